"""GPT-2 itself on minigrad: load OpenAI's weights from a Hugging Face directory and generate.

    python examples/gpt2.py path/to/gpt2 --prompt "Hello, I'm a language model," --max-new-tokens 40

The directory is what the Hugging Face Hub holds for any GPT-2 size (openai-community/gpt2,
gpt2-medium, gpt2-large, gpt2-xl): config.json, model.safetensors, and the tokenizer's
vocab.json + merges.txt (or tokenizer.json). With the network, a hub name ("gpt2") works too:
it is fetched into the Hugging Face cache once.

`GPT.from_pretrained` reads the config, transposes GPT-2's Conv1D weights into Linear's layout
and uses GPT-2's tanh GELU (transformer/huggingface.py); `BPETokenizer.from_pretrained` encodes
with GPT-2's byte table, split pattern and ids (transformer/hf_tokenizer.py). Generation runs
transformer/sample.py's KV cache: each new token costs one position's forward, not the whole
context's. The text is printed as it is drawn, then the speed in tokens per second.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from transformer import GPT
from transformer.huggingface import pretrained_dir
from transformer.sample import stream_text
from transformer.tokenizer import BPETokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate text with GPT-2 on minigrad.")
    parser.add_argument("model", help="a Hugging Face GPT-2 directory, or a hub name such as gpt2 (online)")
    parser.add_argument("--prompt", default="Hello, I'm a language model,", help="the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="how many tokens to generate (default: 40)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest (default: 200)")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()

    started = time.perf_counter()
    model = GPT.from_pretrained(args.model)
    tokenizer = BPETokenizer.from_pretrained(pretrained_dir(args.model))  # the same files: a hub name's in the cache
    print(f"loaded {model.num_parameters():,} parameters in {time.perf_counter() - started:.1f} s", flush=True)

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    stream_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, rng=rng)
    seconds = time.perf_counter() - started
    print(f"{args.max_new_tokens} tokens in {seconds:.2f} s: {args.max_new_tokens / seconds:.1f} tokens/s")


if __name__ == "__main__":
    main()
