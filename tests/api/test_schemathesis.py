"""Schemathesis against the running server's OpenAPI schema: for every operation, generated requests that
fit the schema and requests that break it, sent with an admin token for a real project, get no server
error. Bounded: a few examples per operation and mode, derandomized so a run is repeatable."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.api.conftest import build_production

EXAMPLES = 8


def test_no_server_errors(live, tmp_path):
    target = build_production(live.settings, tmp_path / "fuzz")
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {target.tokens['admin']}"}
    sent, failures, per_operation = 0, [], {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        fixed = {"project": target.code} if "{project}" in operation.path else None  # past the project check
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                nonlocal sent
                response = case.call(base_url=live.base_url, headers=headers)
                sent += 1
                per_operation[operation.label] = per_operation.get(operation.label, 0) + 1
                try:
                    case.validate_response(response, checks=[not_a_server_error])
                except Exception as exc:  # collect every operation's failure, then report them together
                    failures.append(f"{operation.label} ({mode.value}): {response.status_code} {exc}")
                    raise

            try:
                check()
            except Unsatisfiable:
                pass  # no way to break a request that has no parameters: nothing to send in this mode
            except Exception as exc:
                if not failures or operation.label not in failures[-1]:
                    failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}")
    assert len(per_operation) == len(operations), f"some operations got no request: {per_operation}"
    assert sent > 300, f"only {sent} requests were generated"
    assert failures == [], "\n".join(failures)
