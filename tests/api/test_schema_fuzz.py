"""Property-based: requests generated from the served OpenAPI document, valid
and invalid, against the app (through WSGI, in this process). None may get a
server error, on SQLite or PostgreSQL (whichever the suite runs on), and
every answer is what the document says it is."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode

from tests.integration.corpora import unique

EXAMPLES_PER_OPERATION = 25
# The operations are fuzzed in shards, so that the suite's processes share them.
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(api, shard):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api.app)
    every_operation = [result.ok() for result in schema.get_all_operations()]
    assert len(every_operation) >= 10
    operations = every_operation[shard::SHARDS]
    # OpenAPI matches a concrete path before a templated one: a value that
    # turns /webhooks/{endpoint_id} into /webhooks/secret asks for the secret.
    concrete_paths = {operation.path for operation in every_operation if "{" not in operation.path}
    # An admin key of a tenant of its own; the jobs it submits run afterwards.
    # Answers uncompressed: the WSGI client decodes no gzip (test_http_niceties.py).
    headers = {"Authorization": f"Bearer {api.create_key(unique('fuzz'))}", "Accept-Encoding": "identity"}
    with api.worker.paused():
        for operation in operations:
            strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
                generation_mode=GenerationMode.NEGATIVE
            )

            # Drives schemathesis' strategies with Hypothesis directly: its pytest
            # plugin does not run on pytest 9.
            @given(case=strategy)
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
            def answered_as_documented(case):
                assume(case.formatted_path == case.path or case.formatted_path not in concrete_paths)
                case.call_and_validate(
                    headers=headers,
                    checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
                )

            answered_as_documented()
    api.worker.run_pending()
