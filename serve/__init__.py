"""Serving: the selection API in front of a vLLM engine, and the `select` / `rank` clients.

    creative4u serve --model MODEL [--adapter ADAPTER] [--m2fn CKPT] [--engine local|URL]

Endpoints: OpenAI-compatible `POST /v1/chat/completions` (streaming too) and `GET /v1/models`;
`POST /v1/select` (two creatives -> winner, confidence from both orders, per-dimension reasons,
M2FN CTRs); `POST /v1/rank` (2..N creatives -> Bradley-Terry total order); `GET /health`;
`GET /metrics` (Prometheus).

Modules: `engines` (in-process vLLM or an OpenAI-compatible URL), `selection` (both orders ->
one verdict; ranking), `ranking` (Bradley-Terry), `app` (FastAPI), `inputs` and `fetch` (checked
image intake), `admission`, `metrics`, `errors`, `config`, `server` / `client` / `cli` (commands).
"""
