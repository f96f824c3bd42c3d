using RetriBooru.Imaging;
using SkiaSharp;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RetriBooru.Metrics.Vqa;

public sealed record OllamaOptions
{
    /// <summary>Base address of the Ollama server (the API lives under /api).</summary>
    public Uri BaseUrl { get; init; } = new("http://127.0.0.1:11434");
    /// <summary>A vision-language model the server has pulled, e.g. "llava" or "moondream".</summary>
    public string Model { get; init; } = "llava";
    /// <summary>Per-request timeout (a cold model load can take a while).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Extra attempts after a timeout, a dropped connection or a 5xx answer.</summary>
    public int MaxRetries { get; init; } = 2;
    /// <summary>Wait before the first retry; doubled for each further one.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Sampling temperature; 0 with a fixed seed makes answers repeatable.</summary>
    public double Temperature { get; init; } = 0;
    public int Seed { get; init; } = 0;
    /// <summary>Appended to each question so answers stay short phrases (what SWD compares).</summary>
    public string AnswerStyle { get; init; } = " Answer with a short phrase only.";
}

/// <summary>An Ollama request that failed for good; the message says what happened and what to do.</summary>
public sealed class OllamaException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// VQA through a real vision-language model served by Ollama: POST {BaseUrl}/api/generate with
/// {model, prompt, images: [base64 PNG], stream: false, options: {temperature, seed}} and read "response".
/// Timeouts, dropped connections and 5xx answers are retried with exponential backoff; 4xx answers (for
/// example 404 "model not found") and malformed JSON fail at once with a message naming the server and model.
/// </summary>
public sealed class OllamaVqaProvider : IVqaProvider, IDisposable
{
    readonly HttpClient _http;
    readonly OllamaOptions _options;

    public string Name => "ollama-" + _options.Model;

    public OllamaVqaProvider(OllamaOptions? options = null, HttpMessageHandler? handler = null)
    {
        _options = options ?? new OllamaOptions();
        // Relative resolution of "api/generate" drops the last path segment unless the base ends with '/'.
        if (!_options.BaseUrl.AbsoluteUri.EndsWith('/')) _options = _options with { BaseUrl = new Uri(_options.BaseUrl.AbsoluteUri + "/") };
        if (string.IsNullOrWhiteSpace(_options.Model)) throw new ArgumentException("an Ollama model name is required");
        // Each attempt gets its own timeout (see SendOnce); the client-wide one is disabled.
        _http = new HttpClient(handler ?? new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan, BaseAddress = _options.BaseUrl };
    }

    public bool CanAnswer(VqaQuestion question) => true;

    public IReadOnlyList<VqaAnswer> Ask(SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default)
    {
        var png = Convert.ToBase64String(ImageTensor.EncodePng(image));
        return questions.Select(q => new VqaAnswer(q.Id, Generate(q.Text + _options.AnswerStyle, png, cancellationToken))).ToList();
    }

    /// <summary>One prompt about one image (base64 PNG); returns the model's trimmed answer.</summary>
    public string Generate(string prompt, string imageBase64, CancellationToken cancellationToken = default)
    {
        var body = new JsonObject
        {
            ["model"] = _options.Model,
            ["prompt"] = prompt,
            ["images"] = new JsonArray(imageBase64),
            ["stream"] = false,
            ["options"] = new JsonObject { ["temperature"] = _options.Temperature, ["seed"] = _options.Seed },
        };
        var endpoint = new Uri(_options.BaseUrl, "api/generate");
        Exception? last = null;
        for (int attempt = 0; attempt <= _options.MaxRetries; attempt++)
        {
            if (attempt > 0) Task.Delay(_options.InitialBackoff * Math.Pow(2, attempt - 1), cancellationToken).GetAwaiter().GetResult();
            try
            {
                return SendOnce(endpoint, body, cancellationToken);
            }
            catch (RetryableOllamaError e)
            {
                last = e.InnerException ?? e;
                if (attempt == _options.MaxRetries)
                    throw new OllamaException($"Ollama at {endpoint} (model '{_options.Model}'): {e.Message}, after {attempt + 1} attempt(s)", last);
            }
        }
        throw new OllamaException($"Ollama at {endpoint}: no attempt was made", last);
    }

    string SendOnce(Uri endpoint, JsonObject body, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        HttpResponseMessage response;
        string text;
        try
        {
            response = _http.PostAsJsonAsync(endpoint, body, timeout.Token).GetAwaiter().GetResult();
            text = response.Content.ReadAsStringAsync(timeout.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RetryableOllamaError($"timed out after {_options.Timeout.TotalSeconds:0.###} s", e);
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
        {
            throw new RetryableOllamaError($"connection refused (is `ollama serve` running at {_options.BaseUrl}?)", e);
        }
        catch (HttpRequestException e)
        {
            throw new RetryableOllamaError($"request failed: {e.Message}", e);
        }
        using (response)
        {
            if ((int)response.StatusCode >= 500)
                throw new RetryableOllamaError($"server error {(int)response.StatusCode}: {ErrorText(text)}");
            if (response.StatusCode == HttpStatusCode.NotFound)
                throw new OllamaException($"Ollama at {endpoint}: model '{_options.Model}' not found ({ErrorText(text)}); pull it with `ollama pull {_options.Model}`");
            if (!response.IsSuccessStatusCode)
                throw new OllamaException($"Ollama at {endpoint} (model '{_options.Model}') rejected the request with {(int)response.StatusCode}: {ErrorText(text)}");
            JsonNode? json;
            try { json = JsonNode.Parse(text); }
            catch (JsonException e) { throw new OllamaException($"Ollama at {endpoint} (model '{_options.Model}') returned invalid JSON: {Excerpt(text)}", e); }
            if (json?["error"] is JsonNode error) throw new OllamaException($"Ollama at {endpoint} (model '{_options.Model}') reported an error: {error}");
            if (json?["response"] is not JsonValue answer || answer.GetValueKind() != JsonValueKind.String)
                throw new OllamaException($"Ollama at {endpoint} (model '{_options.Model}') returned JSON without a \"response\" string: {Excerpt(text)}");
            return answer.GetValue<string>().Trim();
        }
    }

    static string ErrorText(string body)
    {
        try { if (JsonNode.Parse(body)?["error"] is JsonNode e) return e.ToString(); }
        catch (JsonException) { }
        return Excerpt(body);
    }

    static string Excerpt(string text) => text.Length <= 200 ? text : text[..200] + "...";

    public void Dispose() => _http.Dispose();

    sealed class RetryableOllamaError(string message, Exception? inner = null) : Exception(message, inner);
}
