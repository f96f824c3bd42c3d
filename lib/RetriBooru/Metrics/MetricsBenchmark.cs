using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Runtime;
using SkiaSharp;
using System.Diagnostics;

namespace RetriBooru.Metrics;

/// <summary>One benchmark figure.</summary>
public sealed record BenchmarkFigure(string Component, int Items, double Seconds, string Unit, string Note)
{
    public double PerSecond => Items / Seconds;
}

public sealed record MetricsBenchmarkOptions
{
    public int Images { get; init; } = 32;
    /// <summary>none, tiny, b32, b16 or l14: CLIP tower sizes to time (random weights; speed does not depend on them).</summary>
    public string Clip { get; init; } = "b32";
    public long Seed { get; init; } = 0;
    public int SwdSetSize { get; init; } = 4;
}

/// <summary>
/// Times every embedder and the full SWD pipeline on procedurally drawn 256x256 images (coloured figure on a
/// patterned background), so it runs anywhere without data. Each timing excludes model loading; one warm-up call
/// runs first.
/// </summary>
public static class MetricsBenchmark
{
    static readonly string[] Colours = ["red", "blue", "green", "yellow"];
    static readonly string[] Patterns = ["stripes", "dots", "plain"];

    public static IReadOnlyList<BenchmarkFigure> Run(MetricsBenchmarkOptions options, IProgress<string>? progress = null)
    {
        if (options.Images < 2) throw new ArgumentException("the benchmark needs at least 2 images");
        TorchRuntime.EnsureLoaded();
        var rng = Seeding.Stream(options.Seed, "metrics-bench");
        var scenes = Enumerable.Range(0, options.Images).Select(_ => (Colour: Colours[rng.Next(Colours.Length)], Pattern: Patterns[rng.Next(Patterns.Length)], X: 60 + rng.Next(136))).ToList();
        var images = scenes.Select(s => Draw(s.Colour, s.Pattern, s.X)).ToList();
        var figures = new List<BenchmarkFigure>();
        try
        {
            progress?.Report("ResNet18 (ONNX Runtime)");
            using var resnet = new ResNet18Embedder();
            figures.Add(Time("image embedder: ResNet18 (ONNX)", images.Count, "images", "224x224, ImageNet weights", () => { foreach (var i in images) resnet.Embed(i); }, () => resnet.Embed(images[0])));

            progress?.Report("MiniLM (ONNX Runtime)");
            using var minilm = new MiniLmTextEmbedder();
            var answers = scenes.Select(s => $"a {s.Colour} figure in front of a {s.Pattern} background").ToArray();
            figures.Add(Time("text embedder: all-MiniLM-L6-v2 (ONNX)", answers.Length, "texts", "one batch", () => minilm.Embed(answers), () => minilm.Embed(answers[..1])));

            if (options.Clip != "none")
            {
                var (vision, text) = ClipConfigs(options.Clip);
                progress?.Report($"CLIP towers ({options.Clip})");
                using var clipImage = new ClipImageEmbedder(new ClipVisionTower(vision));
                figures.Add(Time($"image embedder: CLIP vision {options.Clip} (TorchSharp)", images.Count, "images", $"random weights, batches of {clipImage.BatchSize}", () => clipImage.EmbedAll(images), () => clipImage.Embed(images[0])));
                using var clipText = new ClipTextTower(text);
                figures.Add(TimeClipText(clipText, answers.Length, options.Clip));
            }

            progress?.Report("attribute probe");
            var schema = new AttributeSchema([new AttributeSpec("colour", Colours), new AttributeSpec("background", Patterns)]);
            var samples = images.Select((im, k) => new ProbeSample(im, new Dictionary<string, string> { ["colour"] = scenes[k].Colour, ["background"] = scenes[k].Pattern })).ToList();
            var trainWatch = Stopwatch.StartNew();
            var (probe, report) = AttributeProbe.Train(schema, samples, new AttributeProbeOptions { Epochs = 5, Seed = options.Seed });
            trainWatch.Stop();
            using (probe)
            {
                figures.Add(new BenchmarkFigure("attribute probe: training", samples.Count * 5, trainWatch.Elapsed.TotalSeconds, "image-epochs", $"5 epochs, held-out accuracy {report.MeanHeldOutAccuracy:P0}"));
                figures.Add(Time("VQA: attribute probe", images.Count, "images", "all questions it answers", () => { foreach (var i in images) probe.Ask(i, VqaQuestions.Default); }, () => probe.Ask(images[0], VqaQuestions.Default)));

                progress?.Report("SWD pipeline");
                int n = Math.Min(options.SwdSetSize, images.Count - 1);
                var references = images.Take(1).ToList();
                var generations = images.Skip(1).ToList();
                var distance = new EmbeddingAnswerDistance(minilm);
                // The baseline only changes the weights, not the work done; 0.8 is a typical ResNet18 unrelated-pair level.
                var evaluator = new SwdEvaluator(probe, distance, identityBaseline: 0.8);
                void Pipeline()
                {
                    var refEmbedding = resnet.Embed(references[0]);
                    for (int start = 0; start + n <= generations.Count; start += n)
                    {
                        var set = generations.Skip(start).Take(n).ToList();
                        var sims = set.Select(g => VectorMath.Dot(resnet.Embed(g), refEmbedding)).ToList();
                        evaluator.Evaluate(set, sims, references);
                    }
                }
                int scored = generations.Count / n * n;
                figures.Add(Time("SWD pipeline (ResNet18 identity + probe VQA + MiniLM answers)", scored, "images", $"sets of {n}, 1 reference", Pipeline, null));
            }
        }
        finally
        {
            foreach (var i in images) i.Dispose();
        }
        return figures;
    }

    static (ClipVisionConfig, TextEncoderConfig) ClipConfigs(string name) => name switch
    {
        "tiny" => (new ClipVisionConfig { HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, ImageSize = 64, PatchSize = 16, ProjectionDim = 32 },
                   new TextEncoderConfig { HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, ProjectionDim = 32 }),
        "b32" => (ClipVisionConfig.VitB32, TextEncoderConfig.VitB),
        "b16" => (ClipVisionConfig.VitB16, TextEncoderConfig.VitB),
        "l14" => (ClipVisionConfig.VitL14, TextEncoderConfig.VitL14),
        _ => throw new ArgumentException($"unknown CLIP size '{name}' (none, tiny, b32, b16, l14)"),
    };

    static BenchmarkFigure TimeClipText(ClipTextTower tower, int count, string size)
    {
        // Token ids without a tokenizer file: start, a few word ids, end, padding (speed depends only on length 77).
        var ids = new long[count * 77];
        for (int r = 0; r < count; r++)
        {
            ids[r * 77] = 49406;
            for (int t = 1; t < 77; t++) ids[r * 77 + t] = t < 12 ? 320 + r + t : 49407;
        }
        void Forward()
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var noGrad = TorchSharp.torch.no_grad();
            tower.Forward(TorchSharp.torch.tensor(ids, [count, 77]));
        }
        return Time($"text embedder: CLIP text {size} (TorchSharp)", count, "texts", "random weights, 77 tokens", Forward, Forward);
    }

    static BenchmarkFigure Time(string component, int items, string unit, string note, Action run, Action? warmUp)
    {
        warmUp?.Invoke();
        var watch = Stopwatch.StartNew();
        run();
        return new BenchmarkFigure(component, items, Math.Max(watch.Elapsed.TotalSeconds, 1e-9), unit, note);
    }

    static SKBitmap Draw(string colour, string pattern, int x)
    {
        var bitmap = new SKBitmap(new SKImageInfo(256, 256, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(new SKColor(200, 210, 230));
        using var accent = new SKPaint { Color = new SKColor(90, 90, 120), IsAntialias = true };
        if (pattern == "stripes") for (int i = 0; i < 256; i += 32) canvas.DrawRect(i, 0, 16, 256, accent);
        if (pattern == "dots") for (int i = 16; i < 256; i += 32) for (int j = 16; j < 256; j += 32) canvas.DrawCircle(i, j, 6, accent);
        var fill = colour switch { "red" => SKColors.Red, "blue" => SKColors.Blue, "green" => SKColors.Green, _ => SKColors.Gold };
        using var paint = new SKPaint { Color = fill, IsAntialias = true };
        canvas.DrawCircle(x, 80, 36, paint);
        canvas.DrawRect(x - 40, 120, 80, 110, paint);
        return bitmap;
    }
}
