"""The local Alpine follows the contract (checked over HTTP, as the client sees it)."""

import json
from pathlib import Path

import requests

from sync.testing.stub import HEALTH_PATH, SIGNAL_PATH, AlpineStub

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "alpine-hash-vectors.json").read_text())["vectors"]


def post(stub, body, key="k" * 20):
    return requests.post(stub.url + SIGNAL_PATH, json=body, headers={"X-API-Key": key}, timeout=5)


def test_every_hash_vector_is_stored_then_answered_as_duplicate():
    with AlpineStub(key="k" * 20) as stub:
        for vector in VECTORS:
            body = {**vector["body"], "sha256": vector["sha256"], "reasoning": "Vector from alpine-hash-vectors.json"}
            body = {key: value for key, value in body.items() if value is not None}
            first, again = post(stub, body), post(stub, body)
            assert (first.status_code, first.json()["status"]) == (201, "success"), (vector["body"], first.text)
            assert (again.status_code, again.json()["status"]) == (201, "duplicate")
        stored = requests.get(stub.url + "/_stub/signals", headers={"X-API-Key": "k" * 20}, timeout=5)
        assert len(stored.json()) == len(VECTORS)


def test_contract_answers_in_order():
    with AlpineStub(key="k" * 20) as stub:
        assert requests.post(stub.url + SIGNAL_PATH, json={}, timeout=5).json() == {"detail": "Missing X-API-Key header"}
        assert post(stub, {}, key="wrong").status_code == 401
        invalid = post(stub, {"action": "HOLD", "confidence": 101})
        assert invalid.status_code == 422
        assert {tuple(item["loc"]) for item in invalid.json()["detail"]} >= {("body", "action"), ("body", "confidence")}
        vector = {**VECTORS[0]["body"], "sha256": VECTORS[0]["sha256"]}
        assert post(stub, {**vector, "entry_price": 1.0}).json() == {"detail": "Signal hash verification failed"}
        refused = post(stub, {**vector, "reasoning": "short"})
        assert refused.status_code == 500 and "rationale too short" in refused.json()["detail"]
        assert post(stub, vector).status_code == 201
        assert stub.state.stored_rows()[0]["confidence"] == VECTORS[0]["body"]["confidence"] / 100
        health = requests.get(stub.url + HEALTH_PATH, timeout=5).json()
        assert health["status"] == "healthy"


def test_faults_can_be_changed_over_http():
    with AlpineStub() as stub:
        requests.post(stub.url + "/_stub/faults", json={"throttle_rate": 1.0, "retry_after": "7"}, timeout=5)
        vector = {**VECTORS[0]["body"], "sha256": VECTORS[0]["sha256"]}
        answer = requests.post(stub.url + SIGNAL_PATH, json=vector, timeout=5)
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
