// A Node.js client of protoserve's native gRPC API, loading the contract's .proto files
// at run time (@grpc/proto-loader): a streamed chat (GenerateService.ChatStream), an
// embedding (PoolingService.Embed) and what to do with errors.
//
//   npm install
//   node client.mjs [--target localhost:50051] [--model demo] [--prompt "Hello!"]
//                   [--embed-model all-MiniLM-L6-v2] [--json]
//
// The target can be the service itself or Envoy (envoy/), which forwards gRPC as is.
// The .proto files come from ../../proto plus the googleapis protos (google/api,
// google/rpc) shipped with the googleapis-common-protos Python package; set
// GOOGLEAPIS_PROTO_PATH to use another copy.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");

const { values: args } = parseArgs({
  options: {
    target: { type: "string", default: "localhost:50051" },
    model: { type: "string", default: "demo" },
    // The embedding model `make serve` serves beside the chat demo.
    "embed-model": { type: "string", default: "all-MiniLM-L6-v2" },
    prompt: { type: "string", default: "Hello!" },
    "max-tokens": { type: "string", default: "16" },
    json: { type: "boolean", default: false },
  },
});

function googleapisProtoPath() {
  if (process.env.GOOGLEAPIS_PROTO_PATH) return process.env.GOOGLEAPIS_PROTO_PATH;
  const venvPython = path.join(REPO, ".venv", "bin", "python");
  const python = process.env.PYTHON || (existsSync(venvPython) ? venvPython : "python3");
  const code =
    "import pathlib, google.api.annotations_pb2 as m; print(pathlib.Path(m.__file__).parents[2])";
  return execFileSync(python, ["-c", code], { encoding: "utf8" }).trim();
}

const includeDirs = [path.join(REPO, "proto"), googleapisProtoPath()];
const definition = protoLoader.loadSync(
  ["protoserve/generate/v1/generate.proto", "protoserve/pooling/v1/pooling.proto"],
  // Field names as in the .proto (snake_case), enums as names, oneofs tell which is set.
  { keepCase: true, enums: String, longs: String, defaults: false, oneofs: true, includeDirs },
);
const protoserve = grpc.loadPackageDefinition(definition).protoserve;

// google.rpc.Status and its details arrive in the `grpc-status-details-bin` trailer.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) =>
  includeDirs.map((dir) => path.join(dir, target)).find(existsSync) ?? target;
rpcTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], {
  keepCase: true,
});

/** A gRPC error as plain data: code name, message and decoded google.rpc details. */
function describeError(error) {
  const described = { code: grpc.status[error.code], message: error.details, details: [] };
  const [bin] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (bin) {
    const status = rpcTypes.lookupType("google.rpc.Status").decode(bin);
    for (const any of status.details) {
      const type = rpcTypes.lookupType(any.type_url.split("/").pop());
      const detail = type.toObject(type.decode(any.value));
      described.details.push({ type: type.fullName.slice(1), ...detail });
    }
  }
  return described;
}

const deadline = () => new Date(Date.now() + 60_000);

/** Streams a chat; resolves with the text, finish reason and usage. */
function chatStream(client, request) {
  return new Promise((resolve, reject) => {
    const metadata = new grpc.Metadata();
    metadata.set("x-request-id", `node-${process.pid}-${Date.now()}`);
    const call = client.ChatStream(request, metadata, { deadline: deadline() });
    const result = { text: "", finish: null, usage: null, ended: false };
    call.on("data", (message) => {
      // message.event names the oneof member that is set: prompt, delta or end.
      if (message.event === "delta") {
        result.text += message.delta.content ?? "";
        if (!args.json) process.stdout.write(message.delta.content ?? "");
        if (message.delta.finish) result.finish = message.delta.finish.reason;
      } else if (message.event === "end") {
        result.usage = message.end.usage;
        result.ended = true; // a stream without `end` did not finish
      }
    });
    call.on("error", reject);
    call.on("end", () => resolve(result));
  });
}

function unary(client, method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, { deadline: deadline() }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    ),
  );
}

async function main() {
  const credentials = grpc.credentials.createInsecure();
  const generate = new protoserve.generate.v1.GenerateService(args.target, credentials);
  const pooling = new protoserve.pooling.v1.PoolingService(args.target, credentials);
  const summary = {};

  const chat = {
    model: args.model,
    messages: [{ role: "user", content: args.prompt }],
    sampling: { temperature: 0 },
    stopping: { max_tokens: Number(args["max-tokens"]) },
  };
  summary.chat = await chatStream(generate, chat);
  if (!args.json) console.log(`\n[finish ${summary.chat.finish}]`, summary.chat.usage);

  // An embedding of the prompt from --embed-model. PoolingService answers UNIMPLEMENTED
  // for a model that does not embed (e.g. --embed-model demo): reported, not fatal.
  try {
    const request = { model: args["embed-model"], inputs: [{ text: args.prompt }] };
    const reply = await unary(pooling, "Embed", request);
    const vector = reply.data[0].embedding.values;
    const norm = Math.sqrt(vector.reduce((sum, v) => sum + v * v, 0));
    summary.embed = { model: reply.model, dimensions: vector.length, norm };
    if (!args.json) console.log(`embedding from ${reply.model}: ${vector.length} dimensions`);
  } catch (error) {
    if (error.code !== grpc.status.UNIMPLEMENTED) throw error;
    summary.embed = describeError(error);
    if (!args.json) console.log(`no embeddings from this model: ${error.details}`);
  }

  // A request the server refuses: INVALID_ARGUMENT with a google.rpc.BadRequest detail
  // naming the field.
  try {
    await unary(generate, "Chat", { ...chat, sampling: { temperature: -1 } });
    throw new Error("temperature -1 was accepted");
  } catch (error) {
    if (error.code !== grpc.status.INVALID_ARGUMENT) throw error;
    summary.invalid = describeError(error);
    if (!args.json) console.log("refused:", JSON.stringify(summary.invalid));
  }

  if (args.json) console.log(JSON.stringify(summary));
  generate.close();
  pooling.close();
}

main().catch((error) => {
  console.error(error.code === undefined ? error : describeError(error));
  process.exit(1);
});
