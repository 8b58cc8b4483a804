"""Captions of several words: the word vocabulary, decoding that does not loop, and the
exact-caption and per-word figures of ``polyvae evaluate``."""
from __future__ import annotations

import pytest
import torch

from polyvae.core.errors import UsageError
from polyvae.pipelines.evaluation.coherence import caption_scores
from polyvae.plugins.text.modality import TextModality
from polyvae.plugins.text.networks import TextDecoder
from polyvae.plugins.text.repetition import loop_in
from polyvae.plugins.text.vocabulary import EOS, PAD, Vocabulary, longest_repeat

CAPTIONS = ["a small red triangle at the left", "a large blue circle at the top",
            "a small blue square at the right", "a large red triangle at the bottom"]


def test_words_are_tokens_and_texts_come_back_exactly():
    vocab = Vocabulary.fit(CAPTIONS, words=True)
    assert {" small", " red", " triangle", " at", " the"} <= set(vocab.words)
    assert " circle" not in vocab.words                     # seen once: spelled by character
    assert vocab.tokens("a small red triangle at the left") == ["a", " small", " red", " triangle", " at",
                                                                 " the", " ", "l", "e", "f", "t"]
    for text in CAPTIONS + ["a red  circle at the top", "Tall red triangle at the left"]:
        ids = vocab.encode([text], 64)[0]
        assert vocab.decode(ids) == text.replace("T", "\N{REPLACEMENT CHARACTER}")  # 'T' never seen
    marked = Vocabulary.fit(CAPTIONS + ["a red circle, at the top!\tA"], words=True)
    for text in ["a red  circle, at the top!", "A small\tred triangle, at the left!"]:
        assert marked.decode(marked.encode([text], 64)[0]) == text
    assert vocab.unknown(["Tall red", "a red"]) == {"T": 1}
    cut = vocab.encode(["a small red triangle at the left"], 5)[0]
    assert vocab.decode(cut) == "a small red triangle" and cut.tolist()[-1] == EOS


def test_word_state_round_trips_and_old_states_load_as_characters():
    mod = TextModality()
    mod.fit(CAPTIONS)
    x = mod.preprocess(CAPTIONS)
    assert x.shape[1] == mod.length == 19                    # 18 tokens of the longest + end mark
    assert mod.notes() == []
    again = TextModality()
    again.load_state(mod.state())
    assert torch.equal(again.preprocess(CAPTIONS), x)
    assert again.no_repeat_ngram == mod.no_repeat_ngram == 2
    old = {"chars": mod.state()["chars"], "length": 40, "mean_length": 31.0}    # saved before words
    loaded = TextModality()
    loaded.load_state(old)
    assert loaded.vocab.words == [] and loaded.no_repeat_ngram == 0 and loaded.min_length == 1
    assert loaded.to_text(loaded.preprocess(CAPTIONS[:1])[0]) == CAPTIONS[0]
    assert loaded.preprocess(CAPTIONS[:1]).shape == (1, 40)
    chars = TextModality(tokens="chars")
    chars.fit(CAPTIONS)
    assert chars.vocab.words == [] and "words" not in chars.state() and chars.length == 35


def test_text_options_are_checked():
    with pytest.raises(UsageError, match="words or chars"):
        TextModality(tokens="bpe")
    with pytest.raises(UsageError, match="no_repeat_ngram"):
        TextModality(no_repeat_ngram=1)


def test_the_blocked_run_length_is_fitted_on_the_training_texts():
    assert longest_repeat(list("banana")) == 3 and longest_repeat([5, 6, 7]) == 0
    mod = TextModality(tokens="chars")
    mod.fit(["banana", "kiwi"])
    assert mod.no_repeat_ngram == 4                          # "ana" twice is allowed, 4 is not
    mod = TextModality()
    mod.fit(["the cat saw the dog", "the dog saw the cat"])
    assert mod.no_repeat_ngram == 2                          # " the" twice: a run of 1 repeated
    assert TextModality(no_repeat_ngram=0).options["no_repeat_ngram"] == 0


def _stuck_decoder(vocab: int, length: int, n: int) -> TextDecoder:
    """A decoder that always prefers token 5, then 6, then the end symbol."""
    dec = TextDecoder(vocab, 4, length, embed=8, hidden=8, no_repeat_ngram=n)
    with torch.no_grad():
        dec.out.weight.zero_()
        dec.out.bias.fill_(-10.0)
        dec.out.bias[5], dec.out.bias[6], dec.out.bias[EOS] = 3.0, 2.0, 1.0
    return dec


def test_a_decoder_forced_to_repeat_is_blocked_and_ends():
    h = torch.zeros(3, 4)
    free = _stuck_decoder(10, 12, 0).greedy(h)
    assert free[0].tolist() == [5] * 12                      # loops to the length limit
    blocked = _stuck_decoder(10, 12, 2).greedy(h)
    # "5 5", then 5 again would say "5 5" twice: 6; "6 5" is new; then "5 5" and "5 6" are said
    assert blocked[0].tolist() == [5, 5, 6, 5, EOS] + [PAD] * 7
    assert torch.equal(blocked[0], blocked[2])
    words = [str(t) for t in blocked[0].tolist() if t not in (EOS, PAD)]
    assert len({tuple(words[i:i + 2]) for i in range(len(words) - 1)}) == len(words) - 1
    vocab = Vocabulary([], [" the", " triangle", " red"])
    looped = vocab.decode(torch.tensor([5] * 12))
    assert loop_in(looped) is not None and loop_in(vocab.decode(blocked[0])) is None


def test_no_text_ends_before_the_shortest_training_text():
    eager = _stuck_decoder(10, 12, 2)
    eager.min_length = 1
    with torch.no_grad():
        eager.out.bias[EOS] = 9.0                            # the end symbol first, always
    assert eager.greedy(torch.zeros(1, 4))[0].tolist()[:2] == [5, EOS]
    mod = TextModality()
    mod.fit(["one", "one", "two", "three four"])
    assert mod.min_length == 1                               # "one", seen twice: one word token
    chars = TextModality(tokens="chars")
    chars.fit(["one", "two", "three four"])
    assert chars.min_length == 3 and chars.state()["min_length"] == 3
    dec = chars.build_decoder(4)
    with torch.no_grad():
        dec.out.bias[EOS] = 50.0
    assert [len(t) for t in chars.to_values(chars.generate(dec, torch.zeros(2, 4)))] == [3, 3]


def test_the_modality_decoder_blocks_what_its_training_texts_never_repeat():
    torch.manual_seed(0)
    mod = TextModality()
    mod.fit(CAPTIONS)
    dec = mod.build_decoder(4)
    assert dec.no_repeat_ngram == 2
    out = mod.generate(dec, torch.randn(16, 4))              # untrained: whatever it says, no loop
    for text in mod.to_values(out):
        assert loop_in(text) is None, text


def test_exact_caption_and_word_accuracy_worked_numbers():
    real = ["a small red triangle at the left", "a large blue circle at the top",
            "a small blue square", "a red circle"]
    made = ["a small red triangle at the left",              # exact: 1
            "a large blue circle at the  top",               # spacing does not count: 1
            "a small blue square at the right",              # 4 of 7 positions
            "a red square at"]                               # 2 of 4 positions
    scores = caption_scores(made, real)
    assert scores["exact_caption"] == pytest.approx(2 / 4)
    assert scores["word_accuracy"] == pytest.approx((1 + 1 + 4 / 7 + 2 / 4) / 4)
    assert caption_scores(["A red circle"], ["a red circle"]) == {"exact_caption": 0.0,
                                                                  "word_accuracy": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        caption_scores(["a"], [])
