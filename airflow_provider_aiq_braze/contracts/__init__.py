"""Row contracts: what a staged row must look like and how it becomes a Braze object."""
