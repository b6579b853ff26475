"""Amazon ECR and STS: sessions, registry tokens, repositories, rules and pacing."""

from __future__ import annotations
