from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stacks import ALLOWED_MODELS, ALLOWED_PROFILES, BUCKET, IT_PROJECT, ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def db(firestore_emulator: Any) -> Iterator[Any]:
    from google.cloud import firestore

    from worker_llm_client.catalog.push import push_all

    client = firestore.Client(project=IT_PROJECT)
    push_all(client, ROOT)
    yield client
    client.close()


@pytest.fixture(scope="session")
def bucket(fake_gcs: Any) -> Iterator[Any]:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials

    client = storage.Client(project=IT_PROJECT, credentials=AnonymousCredentials())
    yield client.bucket(BUCKET)
    client.close()


@pytest.fixture
def settings(stub: Any, db: Any, fake_gcs: Any) -> Any:
    from worker_llm_client.config import Settings

    return Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": IT_PROJECT,
            "ARTIFACTS_BUCKET": BUCKET,
            "ALLOWED_LLM_PROFILES": ALLOWED_PROFILES,
            "ALLOWED_MODELS": ALLOWED_MODELS,
            "GEMINI_API_KEY": "stub-key",
            "GEMINI_BASE_URL": stub.base_url,
            "MODEL_RETRY_BUDGET_SECONDS": "0",  # transient errors go straight to RETRY_WAIT here
        }
    )


@pytest.fixture
def executor(settings: Any) -> Iterator[Any]:
    from worker_llm_client.bootstrap import build_executor

    built = build_executor(settings)
    yield built
    built.close()
