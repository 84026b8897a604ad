"""Airflow-free Braze REST API layer.

``instances`` (REST endpoints), ``limits`` and ``rules`` (what Braze accepts), ``encoding`` (the
one JSON encoder), ``settings`` (what a client needs, from connection extras), ``client`` (the
pooled session and the send/retry/429 policy), ``answers`` (every answer classified into a
verdict, the key scrubbed), ``responses`` (the verdicts and typed results), ``ratelimit``,
``errors``.
"""
