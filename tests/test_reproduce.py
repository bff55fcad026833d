"""python -m drivekit reproduce --inplace: what a committed notebook keeps of an execution."""
import nbformat

from drivekit.course import reproduce


def test_stored_notebooks_keep_results_and_drop_stderr_progress_bars_and_timestamps():
    bar = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "a"},
                                                       "text/plain": "SFT:   0%|          | 0/384 [00:00<?, ?it/s]"})
    panel = nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "b"},
                                                         "text/plain": "VBox(children=(FloatSlider(value=1.0),))"})
    printed = nbformat.v4.new_output("stream", name="stdout", text="F1_act 0.990\n")
    warning = nbformat.v4.new_output("stream", name="stderr", text="/home/me/.venv/...: FutureWarning\n")
    table = nbformat.v4.new_output("execute_result", data={"text/plain": "  50%|  fifty percent"}, execution_count=1)
    cell = nbformat.v4.new_code_cell("train()", outputs=[bar, printed, warning, panel, table])
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-07T12:10:36Z"}
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    reproduce.for_storing(nb)
    assert cell.outputs == [printed, panel, table]  # a widget that is no bar, and any result, stay
    assert "execution" not in cell.metadata
