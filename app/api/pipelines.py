from __future__ import annotations

from app.api import API_PREFIX
from app.api.schemas import PipelineSchema
from app.api.web_extensions import Blueprint
from app.auth import current_tenant_id
from app.extensions import db
from app.services import pipeline_catalog

blp = Blueprint(
    "pipelines", __name__, url_prefix=f"{API_PREFIX}/pipelines", description="Retrieval pipelines a search can use"
)


@blp.route("")
@blp.doc(operationId="list_pipelines")
@blp.response(200, PipelineSchema(many=True))
def list_pipelines():
    """List the pipelines: status, description, capabilities and recent timings.

    A search names one in `pipeline`; one that is `unavailable` answers 503.
    """
    return pipeline_catalog.list_pipelines(db.session, current_tenant_id())


@blp.route("/<name>")
@blp.doc(operationId="get_pipeline")
@blp.response(200, PipelineSchema)
@blp.alt_response(404, description="No such pipeline")
def get_pipeline(name: str):
    """Read one pipeline.

    Its status, capabilities, and the latency of its recent searches.
    """
    return pipeline_catalog.get_pipeline(db.session, current_tenant_id(), name)
