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
