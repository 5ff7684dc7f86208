"""Text pooling on hand-made tensors and on real all-MiniLM-L6-v2 / BERT models."""
import pytest
import torch

from cxrclip.config import TextEncoderConfig
from cxrclip.text_encoder import TextEncoder, load_tokenizer, pool_hidden_states

HIDDEN = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [3.0, 4.0], [9.0, 9.0]],
                       [[5.0, 5.0], [7.0, 1.0], [9.0, 9.0], [9.0, 9.0]]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


@pytest.mark.parametrize("pooling, expected", [
    ("eos", [[3.0, 4.0], [7.0, 1.0]]),          # index mask.sum - 1
    ("bos", [[1.0, 0.0], [5.0, 5.0]]),
    ("mean", [[2.0, 2.0], [6.0, 3.0]]),         # padding ignored
])
def test_pooling_known_values(pooling, expected):
    torch.testing.assert_close(pool_hidden_states(HIDDEN, MASK, pooling), torch.tensor(expected))


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="got 'max'"):
        pool_hidden_states(HIDDEN, MASK, "max")


def test_minilm_eos_pooling_picks_last_real_token(minilm_dir):
    encoder = TextEncoder(TextEncoderConfig(path=str(minilm_dir), pooling="eos"), pretrained=True).eval()
    tokenizer = load_tokenizer(minilm_dir)
    batch = tokenizer(["no acute findings", "small left pleural effusion with atelectasis"],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = encoder(batch["input_ids"], batch["attention_mask"])
        hidden = encoder.text_encoder(**batch).last_hidden_state
    assert encoder.out_dim == 384 and pooled.shape == (2, 384)
    last = batch["attention_mask"].sum(-1) - 1
    assert batch["input_ids"][0, last[0]] == tokenizer.sep_token_id
    torch.testing.assert_close(pooled[0], hidden[0, last[0]])
    torch.testing.assert_close(pooled[1], hidden[1, last[1]])


def test_pretrained_loads_directory_weights_and_architecture_only_does_not(minilm_dir):
    pretrained = TextEncoder(TextEncoderConfig(path=str(minilm_dir)), pretrained=True)
    random = TextEncoder(TextEncoderConfig(path=str(minilm_dir)), pretrained=False)
    a = pretrained.text_encoder.embeddings.word_embeddings.weight
    b = random.text_encoder.embeddings.word_embeddings.weight
    assert a.shape == b.shape and not torch.equal(a, b)


def test_missing_directory_explains_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no transformers config.json"):
        TextEncoder(TextEncoderConfig(path=str(tmp_path)))
    with pytest.raises(ValueError, match="text.path is empty"):
        TextEncoder(TextEncoderConfig(path=""))


def test_clinicalbert_shaped_directory_builds(clinicalbert_dir):
    with torch.device("meta"):
        encoder = TextEncoder(TextEncoderConfig(path=str(clinicalbert_dir)))
    assert encoder.out_dim == 768
    assert encoder.text_encoder.embeddings.word_embeddings.weight.shape == (28996, 768)
