/* chatml: the pieces of the ChatML chat template (Qwen-style; llama-server
 * applies it to Qwen3 models). The simulator renders prompts with them
 * (sim_prompt.c) and trace import sizes its synthesized prompts by them
 * (trace_read.c), so a length-only trace line costs the sim exactly the
 * tokens it asks for. A message is CHATML_START role "\n" text CHATML_END. */
#ifndef TOKENTAP_CHATML_H
#define TOKENTAP_CHATML_H

#define CHATML_START "<|im_start|>"
#define CHATML_END "<|im_end|>\n"
/* The generation prompt, after the last message. */
#define CHATML_ASSISTANT CHATML_START "assistant\n"
/* What the Qwen3 template adds after the generation prompt when thinking is off. */
#define CHATML_THINK_OFF "<think>\n\n</think>\n\n"

#endif
