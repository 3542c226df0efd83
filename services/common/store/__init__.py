"""The tables a gateway and a worker both write, one module per table family.

Each module here is the only code that writes its tables (`jobs` is `services.common.jobs`).
Functions take the connection to run on, so a caller's transaction can span tables; the
gateway calls the async ones, the workers the sync ones.
"""
