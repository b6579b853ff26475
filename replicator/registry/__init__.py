"""The OCI distribution API over aiohttp: transport, authentication and API areas.

``client`` owns requests (authentication, error translation, redirects);
``manifests``, ``blobs``, ``tags`` and ``referrers`` are the API areas built on it.
"""
