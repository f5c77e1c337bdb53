"""What faust is given by streams/app.py, read from a worker module imported in a child
process (the import registers codecs and the data-key loader process-wide, which the other
unit tests must not get): every command topic and the events topic have their agent, under
the name faust gave it when each was a decorated function, with one actor per partition,
and the tables are the ones provisioning makes changelogs for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backbone.settings import BackboneSettings
from store.topics import TABLES, TopicNames

ROOT = Path(__file__).resolve().parents[2]
READ_WIRING = """
import json
import streams.app as worker
agents = {
    name: [agent.channel.get_topic_name(), agent.isolated_partitions]
    for name, agent in worker.app.agents.items()
}
print(json.dumps({"agents": agents, "tables": sorted(worker.app.tables)}))
"""


def test_each_topic_has_its_agent_one_actor_per_partition_and_the_provisioned_tables() -> None:
    done = subprocess.run(
        [sys.executable, "-c", READ_WIRING],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wiring = json.loads(done.stdout.strip().splitlines()[-1])
    names = TopicNames(BackboneSettings.from_env().cluster.topic_prefix)

    assert wiring["agents"] == {
        "streams.app.identity_agent": [names.identity_commands, True],
        "streams.app.template_agent": [names.template_commands, True],
        "streams.app.token_agent": [names.token_commands, True],
        "streams.app.file_agent": [names.file_commands, True],
        "streams.app.message_agent": [names.message_commands, True],
        "streams.app.relationship_agent": [names.relationship_commands, True],
        "streams.app.projector": [names.events, True],
    }
    assert wiring["tables"] == sorted(TABLES)
