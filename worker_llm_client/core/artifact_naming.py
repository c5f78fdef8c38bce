"""Request fingerprint -> artifact object name.

The fingerprint hashes everything that determines the model request, so a replayed step with an
identical request lands on the same object name and reuses it instead of calling the model again.

``flow_runs/{run}/{step}/{fingerprint}.json``, each id a segment that is, in order:

- ``quote(id, safe="")`` when that is at most SEGMENT_MAX characters: every name written before
  segments were bounded stays as it was (replays must find those artifacts);
- ``%2E`` / ``%2E%2E`` for ``.`` / ``..``, which GCS tools and URL normalisation treat as paths;
  quote never writes ``%2E`` (a dot is left as it is), so these stay apart from every other id;
- else the longest quoted prefix that fits SEGMENT_MAX, cut between characters, then ``~`` and 128
  bits of the sha256 of the whole id. A cut segment is longer than SEGMENT_MAX and no other kind
  is, so it cannot equal one; two cut ids share a segment only if their hashes collide.

Segments never hold '/', so the name splits back into the same ids: two (run, step) pairs never
share a name. The longest name is ``flow_runs/`` 10 + 2 x (433 + '/') + 64 + ``.json`` 5 = 947
bytes, and with the ``.attempt-N.invalid.json`` that the debug copy of rejected replies uses
instead of ``.json`` (N up to 19 digits) 983: under GCS's 1,024 bytes. GCS's other rules hold by
the quoting: no carriage return or line feed, and every name starts with ``flow_runs/``, never with
``.well-known/acme-challenge/``.
"""

from __future__ import annotations

from itertools import accumulate
from urllib.parse import quote

from worker_llm_client.core.canonical import canonical_json, sha256_hex
from worker_llm_client.execution_models import LlmRequest, Profile, Prompt
from worker_llm_client.models import RUNS


def request_fingerprint(prompt: Prompt, profile: Profile, request: LlmRequest) -> str:
    endpoint = request.endpoint  # absent for the other providers: their fingerprints stay as they were
    where = {"endpoint": [endpoint.base_url, endpoint.structured_output]} if endpoint is not None else {}
    identity = {
        "prompt": {"id": prompt.prompt_id, "version": prompt.version, "sha256": prompt.sha256},
        "profile": {
            "id": profile.profile_id,
            "version": profile.version,
            "provider": request.provider,
            "model": request.model,
            "generation": request.generation.as_dict(),
            "safety": [[s.category, s.threshold] for s in request.safety_settings],
            **where,
        },
        "systemInstruction": request.system_instruction,
        "contents": [[turn.role, turn.text] for turn in request.contents],
        "schema": request.response_schema,
    }
    return sha256_hex(canonical_json(identity))


SEGMENT_MAX = 400  # quoted characters (ASCII, so bytes) an id keeps before it is cut
_HASH_HEX_DIGITS = 32  # of the sha256 of a cut id: 128 bits
_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


def _quote(value: str) -> str:
    return quote(value, safe="", errors="surrogatepass")


def segment(value: str) -> str:
    quoted = _quote(value)
    if len(quoted) <= SEGMENT_MAX:
        return _DOT_SEGMENTS.get(quoted, quoted)
    digest = sha256_hex(value.encode("utf-8", "surrogatepass"))[:_HASH_HEX_DIGITS]
    return f"{_quoted_prefix(value)}~{digest}"


def _quoted_prefix(value: str) -> str:
    """The quoted characters of ``value`` that fit SEGMENT_MAX (at least SEGMENT_MAX - 11: one
    character quotes to at most 12)."""
    pieces = [_quote(char) for char in value]  # quoting is per character: the pieces add up to the whole
    return "".join(piece for piece, end in zip(pieces, accumulate(map(len, pieces)), strict=True) if end <= SEGMENT_MAX)


def artifact_object_name(run_id: str, step_id: str, fingerprint: str) -> str:
    return f"{RUNS}/{segment(run_id)}/{segment(step_id)}/{fingerprint}.json"


def debug_object_name(artifact_name: str, attempt: int) -> str:
    """``…/{fingerprint}.attempt-{n}.invalid.json``: beside the report's name, never equal to it."""
    return f"{artifact_name.removesuffix('.json')}.attempt-{attempt}.invalid.json"
