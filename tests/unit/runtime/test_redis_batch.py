"""The batch publisher's ids and messages are dramatiq's own, drawn more cheaply."""

from __future__ import annotations

from uuid import UUID

from dramatiq.brokers.stub import StubBroker

from orderhub.adapters.queue.dramatiq_queue import declare_actors, middleware_stack
from orderhub.adapters.queue.redis_batch import message_for, unique_ids


def test_ids_are_distinct_random_uuids_written_as_uuid4_writes_them() -> None:
    ids = unique_ids(64)

    assert len(set(ids)) == 64
    assert all(UUID(text).version == 4 and str(UUID(text)) == text for text in ids)
    assert unique_ids(0) == []
    assert set(unique_ids(64)).isdisjoint(ids)


def test_a_message_is_what_the_actor_would_make_but_for_its_id() -> None:
    actors = declare_actors(StubBroker(middleware=middleware_stack()))
    for actor in (actors.inbox, actors.dispatch):
        ours = message_for(actor, "id-1", "the-id").asdict()
        theirs = actor.message_with_options(args=("id-1",)).asdict()

        assert ours.pop("message_id") == "the-id"
        for fields in (ours, theirs):
            fields.pop("message_timestamp")
        del theirs["message_id"]
        assert ours == theirs
