// The openai npm package, unmodified, against smdlm serve: a completion on an MDLM server and
// a streamed chat completion on a Dream server (the URLs come from test_server). Exits 0 when
// the answers have OpenAI's shapes and the streamed chat equals the whole one.
import OpenAI from "openai";

const fail = (what) => {
  console.error(`openai client: ${what}`);
  process.exit(1);
};

const mdlm = new OpenAI({ baseURL: process.env.SMDLM_URL, apiKey: "test-key", maxRetries: 0 });
const completion = await mdlm.completions.create({
  model: "default",
  prompt: "The cat",
  max_tokens: 8,
  seed: 3,
  steps: 4, // smdlm's own field, passed through by the client
});
const choice = completion.choices[0];
if (completion.object !== "text_completion" || typeof choice.text !== "string" ||
    choice.finish_reason !== "length" || completion.usage.completion_tokens !== 8)
  fail(`completion: ${JSON.stringify(completion)}`);
console.log(`completion: ${JSON.stringify(choice.text)}`);

const dream = new OpenAI({ baseURL: process.env.SMDLM_CHAT_URL, apiKey: "test-key", maxRetries: 0 });
const request = { model: "dream", messages: [{ role: "user", content: "hello" }], max_tokens: 8, seed: 3 };
const whole = await dream.chat.completions.create(request);
const stream = await dream.chat.completions.create({ ...request, stream: true });
let text = "", finish = null, role = null;
for await (const chunk of stream) {
  const c = chunk.choices[0];
  if (chunk.object !== "chat.completion.chunk") fail(`chunk: ${JSON.stringify(chunk)}`);
  role = role ?? c.delta.role ?? null;
  text += c.delta.content ?? "";
  finish = c.finish_reason ?? finish;
}
if (role !== "assistant" || finish === null || text !== whole.choices[0].message.content)
  fail(`streamed chat "${text}" (${role}, ${finish}) vs whole ${JSON.stringify(whole)}`);
console.log(`streamed chat: ${JSON.stringify(text)} (${finish})`);
