"""The job store's Lua scripts, registered on a Redis client.

Each is a `.lua` file in scripts/, read as a package resource (relative to
this package, so an installed wheel finds them as a source checkout does).
A script that changes a job's state starts with reindex.lua, after the
constants it reads (the states, and this store's retention); one through
which a worker writes to its job starts with owned.lua, its fencing check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

from models.jobs.codec import FINAL_STATES, STATES


@cache
def source(name: str) -> str:
    """The text of scripts/`name`.lua."""
    return (resources.files(__package__) / "scripts" / f"{name}.lua").read_text(encoding="utf-8")


def indexing(retention_s: float) -> str:
    """reindex.lua, after the constants it reads."""
    names = ", ".join(f"'{json.dumps(state)}'" for state in STATES)
    finals = ", ".join(f"['{json.dumps(state)}'] = true" for state in FINAL_STATES)
    constants = (
        f"local STATE_NAMES = {{{names}}}\n"
        f"local FINAL_STATES = {{{finals}}}\n"
        f"local RETENTION_MS = {int(retention_s * 1000)}\n"
    )
    return constants + source("reindex")


@dataclass(frozen=True)
class JobScripts:
    transition: Script
    update_owned: Script
    claim: Script
    renew: Script
    cancel_idle: Script
    append_epochs: Script
    index_earlier: Script
    forget_model: Script

    @classmethod
    def register(cls, client: redis.Redis, retention_s: float) -> JobScripts:
        """Each script, ready to run on `client` (EVALSHA, loaded on first use)."""
        reindexing, owned = indexing(retention_s), source("owned")

        def script(*parts: str) -> Script:
            return client.register_script("".join(parts))

        return cls(
            transition=script(reindexing, owned, source("transition")),
            update_owned=script(owned, source("update_owned")),
            claim=script(reindexing, source("claim")),
            renew=script(source("renew")),
            cancel_idle=script(reindexing, source("cancel_idle")),
            append_epochs=script(owned, source("append_epochs")),
            index_earlier=script(reindexing, source("index_earlier")),
            forget_model=script(source("forget_model")),
        )
