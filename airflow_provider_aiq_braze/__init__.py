"""Apache Airflow provider that delivers ActionIQ output to Braze."""

__version__ = "0.1.0"
