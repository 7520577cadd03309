import torch

from gmn.data import EditData
from gmn.evaluate import eval_set, mse_to, no_edit, run_adam


def test_eval_batches_line_up_with_references(tiny_zoo):
    es = eval_set(EditData.from_zoo("mnist5k", "test", "dilate", root=tiny_zoo))
    pairs = es.batches(16, size=5)
    assert torch.equal(torch.cat([idx for idx, _ in pairs]), torch.arange(len(es.data)))
    for idx, b in pairs:  # each batch holds exactly the INRs its indices name
        assert all(torch.equal(p, q[idx]) for p, q in zip(b.params, es.data.params))
    # zero Adam steps is the identity: per-INR errors equal the no-edit errors, INR by INR
    zero = run_adam(es, points=16, steps=0, lr=1e-3)["per_inr"]
    torch.testing.assert_close(zero, mse_to(es.data.params, es.data.arch, es.reference))
    assert abs(zero.mean().item() - no_edit(es)) < 1e-7
    assert run_adam(es, points=None, steps=20, lr=3e-3)["mse"] < 0.5 * no_edit(es)  # the oracle improves
