"""The local stack: not part of the deployed function (``.gcloudignore`` leaves it out).

Processes (``services``: gcloud's Firestore emulator, fake-gcs-server, functions-framework), the
Gemini-compatible stub (``gemini_stub``), CloudEvent bodies built as Firestore builds them
(``cloudevents``), step documents (``documents``) and the demo (``demo``). Run as
``python -m devstack demo|stub``; tests and benchmarks import it, the package never does.
"""
