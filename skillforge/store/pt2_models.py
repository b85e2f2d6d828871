"""PyTorch modules logged as MLflow pt2 models, fast when many share one architecture."""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime
from pathlib import Path

from skillforge.core.errors import ExportError


class Pt2Models:
    """Logs PyTorch modules of one architecture that differ only in their weights (the skills
    of a library) to run `run_id`, as `mlflow.pytorch.log_model` would with pt2, a signature,
    the float32 `example` as input example and pinned requirements, without its costs per
    model: MLflow saves and torch.export traces the first module only (in `folder`); every
    model is that folder with the program given its module's weights and checked against
    it on the example. The run's params and step-0 metrics (MLflow links both to every
    model) are read once."""

    def __init__(self, client, run_id: str, example, folder: Path) -> None:
        import numpy as np

        self.client, self.run_id, self.folder = client, run_id, folder
        self.example = np.asarray(example, dtype=np.float32)
        self.metadata = None  # the first module's MLmodel, once it is saved

    def log(self, module, artifact: str) -> str:
        """Log `module` as logged model `artifact` of the run; returns its model id."""
        import mlflow
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

        if self.metadata is None:
            self._save_first(module)
        model = mlflow.initialize_logged_model(
            name=artifact,
            source_run_id=self.run_id,
            params=self.params,
            experiment_id=self.experiment_id,
        )
        try:
            self.client.log_outputs(self.run_id, [LoggedModelOutput(model.model_id, step=0)])
            if self.step_zero:
                linked = {"model_id": model.model_id}
                metrics = [Metric(**{**m.to_dictionary(), **linked}) for m in self.step_zero]
                self.client.log_batch(self.run_id, metrics=metrics)
            path = self.folder / model.model_id
            self._write(module, path, model)
            self.client.log_model_artifacts(model.model_id, str(path))
            shutil.rmtree(path)
        except Exception:
            self.client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return model.model_id

    def _save_first(self, module) -> None:
        """Read the run; save `module` with MLflow in `folder/first`, load its program."""
        import mlflow
        import numpy as np
        import torch
        from mlflow.models import Model, infer_signature

        run = self.client.get_run(self.run_id)
        self.params, self.experiment_id = dict(run.data.params), run.info.experiment_id
        self.step_zero = [  # what MLflow links to each model it logs
            metric
            for key in run.data.metrics
            for metric in self.client.get_metric_history(self.run_id, key)
            if metric.step == 0 and metric.model_id is None
        ]
        with torch.no_grad():
            output = module(torch.from_numpy(self.example)).numpy()
        metadata = Model()
        mlflow.pytorch.save_model(
            module,
            self.folder / "first",
            mlflow_model=metadata,
            serialization_format="pt2",
            signature=infer_signature(self.example, output),
            input_example=self.example,
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"numpy=={np.__version__}",
            ],
        )
        program_file = next((self.folder / "first").rglob("*.pt2"))
        self.program_file = program_file.relative_to(self.folder / "first")
        self.program = torch.export.load(program_file)
        self.metadata = metadata

    def _write(self, module, path: Path, model) -> None:
        """The first module's folder at `path`, with `module`'s program and `model`'s MLmodel."""
        import torch
        from mlflow.models.model import MLMODEL_FILE_NAME
        from torch.export import ExportedProgram

        shutil.copytree(self.folder / "first", path)
        weights, first = module.state_dict(keep_vars=True), self.program
        program = ExportedProgram(
            root=first.graph_module,
            graph=first.graph,
            graph_signature=first.graph_signature,
            state_dict={key: weights[key] for key in first.state_dict},
            range_constraints=first.range_constraints,
            module_call_graph=first.module_call_graph,
            example_inputs=first.example_inputs,
            constants=first.constants,
            verifiers=first.verifiers,
        )
        example = torch.from_numpy(self.example)
        with torch.no_grad():
            got, expected = program.module()(example), module(example)
        if not torch.allclose(got, expected, rtol=0.0, atol=1e-6, equal_nan=True):
            raise ExportError(f"the exported program of {model.name} does not match its module")
        torch.export.save(program, path / self.program_file)
        metadata = copy.copy(self.metadata)
        metadata.run_id, metadata.artifact_path = self.run_id, model.artifact_location
        metadata.model_uuid = metadata.model_id = model.model_id
        metadata.utc_time_created = str(datetime.now(UTC).replace(tzinfo=None))
        metadata.save(path / MLMODEL_FILE_NAME)
