"""The base model every adapter starts from: the tiny default built here, or a hub id / local path fetched once.

`model.name: tiny` builds a small Llama-architecture model from `model.tiny` with a byte-level BPE tokenizer trained
on the extracted corpus and a ChatML chat template, then pretrains it for `model.tiny.pretrain_steps` on the corpus
text. That makes it what a real base model is to its users: it knows the domain's language but not the tasks, so
the baseline-vs-adapter comparison measures what fine-tuning adds, not LoRA's struggle against random weights.

Any other name is a hub id or a local path: it is loaded once (safetensors only) and saved, so the DVC cache pins
it and a teammate never needs hub access to reproduce.
"""

from __future__ import annotations

from pathlib import Path

from finetune.io import InputError, log
from finetune.params import Model, Tiny


def corpus_texts(blocks: list[dict]) -> list[str]:
    return [f"{b['title']}\n{b['text']}" for b in blocks]


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (every byte is in the alphabet, so no input is ever unknown) with our chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from finetune.chat import CHATML_TEMPLATE, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    pad, start, end = SPECIAL_TOKENS
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=start, eos_token=end)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(tokenizer, cfg: Tiny, max_seq_len: int):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=max_seq_len,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    return model


PRETRAIN_WINDOW = 128  # tokens per pretraining sequence of the tiny base


def pretrain(model, tokenizer, texts: list[str], cfg: Tiny, seq_len: int = PRETRAIN_WINDOW) -> list[float]:
    """Causal-LM training of all weights on the corpus cut into `seq_len`-token windows; returns the losses."""
    import torch

    from finetune.io import progress

    ids = [t for text in texts for t in tokenizer(text + tokenizer.eos_token)["input_ids"]]
    if cfg.pretrain_steps and len(ids) < seq_len:
        raise ValueError(f"{len(ids)} tokens of text, fewer than one pretraining window of {seq_len}")
    windows = torch.tensor(ids[: len(ids) // seq_len * seq_len]).view(-1, seq_len)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    steps = cfg.pretrain_steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.pretrain_lr, total_steps=max(steps, 1), pct_start=0.1)
    model.train()
    losses = []
    for _ in progress(range(steps), "base", "pretrain", "step"):
        batch = windows[torch.randint(len(windows), (cfg.pretrain_batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def fetch_pretrained(name: str, revision: str, trust_remote_code: bool):
    """Load a hub id or local directory; refuses pickled weights (safetensors only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.chat import CHATML_TEMPLATE
    from finetune.training.models import check_safetensors

    def refuse(why: str) -> InputError:
        return InputError("params.yaml", f"model.name={name!r} could not be loaded: {why}".splitlines()[0])

    if Path(name).is_dir():
        # transformers only says "no file named model.safetensors"; say why a local .bin checkpoint is not used.
        try:
            check_safetensors(name)
        except InputError as e:
            raise refuse(e.message) from None
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name, use_safetensors=True, dtype="auto", **kwargs)
    except OSError as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "safetensors" in why:  # a hub repo with only .bin weights
            why += " (only safetensors weights are loaded: a pickled .bin can run code when it is loaded)"
        raise refuse(why) from None
    except ValueError as e:
        if "trust_remote_code" not in str(e):
            raise
        # transformers' own message spans four lines and ends in a hub URL built from a local path.
        raise refuse(
            "it needs its own Python code to load, which is not run unless you set model.trust_remote_code: true "
            "(read that code first)"
        ) from None
    if tokenizer.chat_template is None:
        log("base", f"{name} has no chat template; using ChatML")
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def run(blocks: list[dict], model_params: Model, source: str = "blocks"):
    """(tokenizer, model); `source` names the blocks file in errors."""
    if model_params.name == "tiny":
        if not blocks:
            raise InputError(
                source, "no blocks: extract kept nothing, so there is no text to build the tiny base from"
            )
        tokenizer = train_tokenizer(corpus_texts(blocks), model_params.tiny.vocab_size)
        model = build_tiny(tokenizer, model_params.tiny, model_params.max_seq_len)
        try:
            losses = pretrain(model, tokenizer, corpus_texts(blocks), model_params.tiny)
        except ValueError as e:
            # A few sentences are no corpus to pretrain a language model on, however small.
            raise InputError(
                source,
                f"the corpus is too small to pretrain the tiny base: {e} ({len(blocks)} blocks). Add documents, "
                "or set model.tiny.pretrain_steps: 0, or use a real base model (model.name)",
            ) from None
        if losses:
            log("base", f"pretrained {len(losses)} steps: loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    else:
        tokenizer, model = fetch_pretrained(model_params.name, model_params.revision, model_params.trust_remote_code)
    return tokenizer, model
