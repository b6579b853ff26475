"""The test lab: real servers on loopback that the project's tests run against."""

from __future__ import annotations
