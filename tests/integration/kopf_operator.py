"""A small kopf operator for tests/integration/test_crd_kopf.py: reconciles WebApps.

Run as ``kopf run --standalone --namespace NS tests/integration/kopf_operator.py`` against a
netemu API server (KUBECONFIG). On create and on every spec change it writes the status a real
operator would (phase, the image and replicas it acted on, a Ready condition); on delete it
appends the name to the file named by WEBAPP_DELETED_LOG (kopf holds the object with its
finalizer until this handler has run).
"""

import os

import kopf

GROUP, VERSION, PLURAL = "demo.netemu.io", "v1", "webapps"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.enabled = True
    settings.watching.server_timeout = 60


def _reconciled(spec) -> dict:
    return {"phase": "Running", "image": spec.get("image"), "replicas": spec.get("replicas"),
            "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec, patch, logger, **_):
    patch.status.update(_reconciled(spec))
    logger.info("reconciled on create")


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def updated(spec, patch, **_):
    patch.status.update(_reconciled(spec))


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name, **_):
    with open(os.environ["WEBAPP_DELETED_LOG"], "a") as log:
        log.write(name + "\n")
