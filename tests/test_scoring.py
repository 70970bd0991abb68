"""core.scoring: batched, padded read-back equals one unpadded forward per text."""

import torch

from core.scoring import causal_token_logprobs
from core.testing import tiny_model_and_tokenizer


def test_padded_batches_match_one_row_at_a_time():
    model, tok = tiny_model_and_tokenizer(seed=1)
    texts = [("五绝|春", "春风吹绿草，细雨润花枝。"), ("七绝|", "山"), ("词|浣溪沙|", "一曲新词酒一杯，去年天气旧亭台。")]
    seqs = [(tok(h, add_special_tokens=False)["input_ids"], tok(b, add_special_tokens=False)["input_ids"]) for h, b in texts]
    got = causal_token_logprobs(model, seqs, tok.pad_token_id, batch_size=2)
    for (p, t), lp in zip(seqs, got, strict=True):
        x = torch.tensor([p + t])
        with torch.inference_mode():
            ref = torch.log_softmax(model(input_ids=x).logits.float(), -1)[0, len(p) - 1 : -1]
        want = ref.gather(1, torch.tensor(t)[:, None])[:, 0]
        assert lp.shape == (len(t),)
        torch.testing.assert_close(lp, want, atol=1e-5, rtol=1e-5)
