"""The REST API under /api/: declarative DRF viewsets over the discovery models."""
