"""Domain services: plain functions over the BACnet client and the models.

Tasks, management commands and views are thin callers of these. No BAC0 import here:
the client is passed in (``discovery.bacnet_client.get_client()`` in production)."""
