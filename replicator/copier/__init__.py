"""Copying images: the manifest graph walk, blob deduplication, and the copy order.

``graph`` finds what an image consists of, ``ledger`` makes each blob move once per
destination registry, ``copier`` pushes blobs, then children, then the tag.
"""
