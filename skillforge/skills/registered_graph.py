"""A registered library or agent model, loaded with plain MLflow: an ONNX graph whose inputs
are checked before it runs (the model's own code, `skillforge/store/graph_model.py`)."""

from __future__ import annotations

from skillforge.core.errors import SkillforgeError, first_line


def load_graph(model_uri: str):
    """The `CheckedGraph` of registered model `model_uri` (`models:/<name>/<version>`,
    `models:/<name>@<alias>` or `models:/<name>/latest`). A missing model, or one that is not
    a library or agent model, is a one-line SkillforgeError."""
    import mlflow

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as error:  # MLflow's and the model code's own failures: one line
        raise SkillforgeError(f"cannot load {model_uri}: {first_line(error)}") from None
    try:
        return model.unwrap_python_model().graph
    except Exception:  # another flavour (a skill's pt2 model), or another Python model
        raise SkillforgeError(
            f"{model_uri} is not a library or agent model of skillforge"
        ) from None
