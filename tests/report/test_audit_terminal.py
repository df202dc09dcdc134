"""The audit in the terminal."""


def test_a_model_class_name_with_markup_prints_as_written(capsys):
    import torch

    import initlab
    from initlab.report.audit_terminal import print_audit

    model_class = type("[/]", (torch.nn.Sequential,), {})
    model = model_class(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    report = initlab.audit(model, torch.randn(8, 4), jacobian=False)
    print_audit(report, width=200)
    assert "initlab audit: [/] on a batch of shape (8, 4)" in capsys.readouterr().out


def test_histogram_labels_keep_the_start_and_the_end_of_long_layer_names():
    from initlab.report.audit_figures import LABEL_CHARACTERS, histogram_label

    assert histogram_label(3, "encoder.fc") == "3 encoder.fc"
    label = histogram_label(12, "encoder_block_number_29.projection")
    assert len(label) == LABEL_CHARACTERS and label.startswith("12 encoder_") and label.endswith("_29.projection")
    assert "…" in label
