using RetriBooru.Metrics.Vqa;
using SkiaSharp;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>The Ollama client against a real HTTP server on 127.0.0.1 that speaks /api/generate.</summary>
public class MetricsOllamaTests
{
    /// <summary>A scripted HttpListener: each request takes the next (status, body, delay) step; the last step repeats.</summary>
    sealed class FakeOllamaServer : IDisposable
    {
        readonly HttpListener _listener = new();
        readonly (int Status, string Body, int DelayMs)[] _script;
        readonly Task _loop;
        public ConcurrentQueue<JsonNode> Requests { get; } = new();
        public Uri BaseUrl { get; }
        /// <summary>The path the fake serves; any other path gets 404.</summary>
        public string ApiPath { get; init; } = "/api/generate";

        public FakeOllamaServer(params (int Status, string Body, int DelayMs)[] script)
        {
            _script = script;
            int port = FreePort();
            BaseUrl = new Uri($"http://127.0.0.1:{port}/");
            _listener.Prefixes.Add(BaseUrl.ToString());
            _listener.Start();
            _loop = Task.Run(Serve);
        }

        async Task Serve()
        {
            int n = 0;
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync(); }
                catch (Exception) { return; }
                var step = _script[Math.Min(n++, _script.Length - 1)];
                _ = Task.Run(async () =>
                {
                    try
                    {
                        using var reader = new StreamReader(context.Request.InputStream);
                        var body = await reader.ReadToEndAsync();
                        if (context.Request.Url!.AbsolutePath == ApiPath && context.Request.HttpMethod == "POST") Requests.Enqueue(JsonNode.Parse(body)!);
                        await Task.Delay(step.DelayMs);
                        context.Response.StatusCode = context.Request.Url.AbsolutePath == ApiPath ? step.Status : 404;
                        context.Response.ContentType = "application/json";
                        var bytes = Encoding.UTF8.GetBytes(step.Body);
                        await context.Response.OutputStream.WriteAsync(bytes);
                        context.Response.Close();
                    }
                    catch (Exception) { /* the client gave up (timeout test) */ }
                });
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            try { _loop.Wait(2000); } catch (AggregateException) { }
        }
    }

    static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    static OllamaOptions Options(Uri url, int retries = 2, int timeoutMs = 5000) => new()
    {
        BaseUrl = url, Model = "moondream", MaxRetries = retries, Timeout = TimeSpan.FromMilliseconds(timeoutMs), InitialBackoff = TimeSpan.FromMilliseconds(20),
    };

    static SKBitmap SmallImage()
    {
        var bitmap = new SKBitmap(new SKImageInfo(8, 8, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(new SKColor(200, 30, 30));
        return bitmap;
    }

    [Fact]
    public void Ollama_sends_model_prompt_and_png_image_and_reads_the_response()
    {
        using var server = new FakeOllamaServer((200, """{"model":"moondream","response":"  A striped background. ","done":true}""", 0));
        using var client = new OllamaVqaProvider(Options(server.BaseUrl));
        using var image = SmallImage();
        var answers = client.Ask(image, [VqaQuestions.Background, VqaQuestions.Pose]);
        Assert.Equal(["background", "pose"], answers.Select(a => a.QuestionId));
        Assert.Equal("A striped background.", answers[0].Answer);
        Assert.Equal(2, server.Requests.Count);
        var request = server.Requests.First();
        Assert.Equal("moondream", (string)request["model"]!);
        Assert.False((bool)request["stream"]!);
        Assert.StartsWith(VqaQuestions.Background.Text, (string)request["prompt"]!);
        var png = Convert.FromBase64String((string)request["images"]![0]!);
        using var decoded = SKBitmap.Decode(png);
        Assert.Equal((8, 8), (decoded.Width, decoded.Height));
        Assert.Equal(new SKColor(200, 30, 30), decoded.GetPixel(3, 3));
        Assert.Equal(0.0, (double)request["options"]!["temperature"]!);
    }

    [Fact]
    public void Ollama_keeps_a_base_path_without_a_trailing_slash()
    {
        // Ollama behind a reverse proxy at /ollama; the fake answers 404 for any other path, so a dropped segment fails.
        using var server = new FakeOllamaServer((200, """{"response":"ok"}""", 0)) { ApiPath = "/ollama/api/generate" };
        using var client = new OllamaVqaProvider(Options(new Uri(server.BaseUrl, "ollama")));
        Assert.Equal("ok", client.Generate("q", "AAAA"));
    }

    [Fact]
    public void Ollama_retries_server_errors_with_backoff_then_succeeds()
    {
        using var server = new FakeOllamaServer((503, """{"error":"loading model"}""", 0), (500, "oops", 0), (200, """{"response":"smiling"}""", 0));
        using var client = new OllamaVqaProvider(Options(server.BaseUrl, retries: 2));
        Assert.Equal("smiling", client.Generate("expression?", "AAAA"));
        Assert.Equal(3, server.Requests.Count);
    }

    [Fact]
    public void Ollama_gives_up_after_the_retries_and_says_why()
    {
        using var server = new FakeOllamaServer((503, """{"error":"server overloaded"}""", 0));
        using var client = new OllamaVqaProvider(Options(server.BaseUrl, retries: 1));
        var error = Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA"));
        Assert.Contains("503", error.Message);
        Assert.Contains("server overloaded", error.Message);
        Assert.Contains("2 attempt", error.Message);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public void Ollama_reports_a_missing_model_without_retrying()
    {
        using var server = new FakeOllamaServer((404, """{"error":"model 'moondream' not found, try pulling it first"}""", 0));
        using var client = new OllamaVqaProvider(Options(server.BaseUrl));
        var error = Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA"));
        Assert.Contains("model 'moondream' not found", error.Message);
        Assert.Contains("ollama pull moondream", error.Message);
        Assert.Single(server.Requests);
    }

    [Fact]
    public void Ollama_reports_invalid_json_and_a_missing_response_field()
    {
        using (var server = new FakeOllamaServer((200, "<html>not json</html>", 0)))
        using (var client = new OllamaVqaProvider(Options(server.BaseUrl)))
            Assert.Contains("invalid JSON", Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA")).Message);
        using (var server = new FakeOllamaServer((200, """{"done":true}""", 0)))
        using (var client = new OllamaVqaProvider(Options(server.BaseUrl)))
            Assert.Contains("without a \"response\"", Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA")).Message);
    }

    [Fact]
    public void Ollama_times_out_slow_answers_and_retries_them()
    {
        using var server = new FakeOllamaServer((200, """{"response":"late"}""", 3000));
        using var client = new OllamaVqaProvider(Options(server.BaseUrl, retries: 1, timeoutMs: 200));
        var error = Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA"));
        Assert.Contains("timed out after 0.2 s", error.Message);
        Assert.Equal(2, server.Requests.Count);
    }

    [Fact]
    public void Ollama_reports_connection_refused_with_the_address()
    {
        var url = new Uri($"http://127.0.0.1:{FreePort()}/");
        using var client = new OllamaVqaProvider(Options(url, retries: 1));
        var error = Assert.Throws<OllamaException>(() => client.Generate("q", "AAAA"));
        Assert.Contains("connection refused", error.Message);
        Assert.Contains(url.ToString(), error.Message);
    }
}
