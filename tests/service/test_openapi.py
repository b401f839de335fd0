from __future__ import annotations

from flask.testing import FlaskClient

from service.schemas import JobRequest


def test_the_document_is_generated_from_the_routes_and_models(client: FlaskClient) -> None:
    response = client.get("/openapi.json")  # no key needed
    assert response.status_code == 200
    document = response.json
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in [("/v1/jobs", "post"), ("/v1/models/{name}:predict", "post"),
                         ("/v1/datasets/{dataset_id}", "delete"),
                         ("/v2/models/{name}/infer", "post"), ("/healthz", "get")]:  # fmt: skip
        assert method in paths[path], (path, method)
    body = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobRequest"}
    schemas = document["components"]["schemas"]
    assert (
        schemas["JobRequest"]["properties"].keys()
        == JobRequest.model_json_schema()["properties"].keys()
    )
    assert "ModelSpec" in schemas and "DenseLayer" in schemas
    units = schemas["DenseLayer"]["properties"]["units"]
    assert units["minimum"] == 1 and units["maximum"] == 16_384
    assert paths["/healthz"]["get"]["security"] == []
    parameters = paths["/v1/models/{name}/versions/{version}:predict"]["post"]["parameters"]
    assert {parameter["name"] for parameter in parameters} == {"name", "version"}


def test_docs_page_renders_the_document(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "/openapi.json" in page.get_data(as_text=True)
