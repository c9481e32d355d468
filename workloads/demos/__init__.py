"""The embedded, offline demos: seeded data sets written the way a user's data looks, and
the small models trained on first use (digits, shapes detection and segmentation).
"""
