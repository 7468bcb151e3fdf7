"""The vLLM answers backend (`--answers vllm`, the `gpu` extra): batched greedy generation with vLLM,
then the usual torch teacher-forced forward and backward over those fixed answers.

    answers = VLLMAnswers("meta-llama/Llama-3.2-1B", max_new_tokens=32, eos_id=tokenizer.eos_token_id)
    ids = answers.generate([prompt_ids_1, prompt_ids_2])   # list of answer token ids (eos kept)

Only the answers come from vLLM; every score, log p and rationale is computed by the torch teacher
on the same prompt token ids (vLLM receives token ids, never re-tokenised text), so the rows equal
the torch path's whenever both pick the same greedy tokens. Decoder-only teachers only (vLLM's
engine serves causal LMs); CUDA only. vLLM reserves `gpu_memory_utilization` of the GPU for its KV
cache: the torch teacher shares the same device, so it is kept at 0.3 by default.
"""
from __future__ import annotations


class VLLMAnswers:
    def __init__(self, model: str, *, max_new_tokens: int, eos_id: int | None, dtype: str = "bfloat16",
                 gpu_memory_utilization: float = 0.3):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise ValueError("--answers vllm needs vLLM: pip install -e '.[gpu]' (CUDA only); "
                             "or use --answers torch") from None
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--answers vllm needs a CUDA GPU; use --answers torch on the CPU")
        self.eos_id = eos_id
        self.llm = LLM(model=model, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, enforce_eager=True)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def generate(self, prompts: list[list[int]]) -> list[list[int]]:
        """Greedy answers for prompt token ids; each answer keeps its closing eos when one was generated."""
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], self.params, use_tqdm=False)
        answers = []
        for out in outs:
            ids = list(out.outputs[0].token_ids)
            if (out.outputs[0].finish_reason == "stop" and self.eos_id is not None
                    and (not ids or ids[-1] != self.eos_id)):
                ids.append(self.eos_id)  # stopped on eos: the torch path explains the eos too
            answers.append(ids)
        return answers
