from __future__ import annotations

pytest_plugins = ["tests.lab.fixtures", "tests.lab.moto", "tests.support"]
