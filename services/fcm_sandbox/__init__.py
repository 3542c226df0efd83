"""A local FCM HTTP v1 stand-in: same request and error formats, records what it accepted.

`python -m services.fcm_sandbox` serves it on OFFLOAD_SANDBOX_HOST:OFFLOAD_SANDBOX_PORT.
The API is described in docs/pusher-fcm.md.
"""
