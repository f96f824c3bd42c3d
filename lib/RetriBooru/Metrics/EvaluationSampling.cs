using System.Diagnostics;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using SkiaSharp;
using static TorchSharp.torch;

namespace RetriBooru.Metrics;

/// <summary>What to generate for one reference set: the prompt, the crops it is conditioned on and one recorded seed per sample.</summary>
sealed record SamplingRequest(string Prompt, IReadOnlyList<ReferenceCrop> Crops, IReadOnlyList<long> Seeds)
{
    /// <summary>The K samples of a loaded set, sample k seeded with <see cref="EvaluationSuite.SampleSeed"/>(seed, set id, k).</summary>
    public static SamplingRequest For(LoadedReferenceSet set, EvaluationOptions options) =>
        new(set.Prompt, set.Crops, Enumerable.Range(0, options.SamplesPerReference).Select(k => EvaluationSuite.SampleSeed(options.Seed, set.Set.Id, k)).ToList());
}

/// <summary>
/// The samples of one reference set, in sample order: image, seed and the PNG's path relative to the output folder (null
/// when images are not saved), and the full paths of the PNGs written. The images are disposed with this.
/// </summary>
sealed class SampledSet(IReadOnlyList<SKBitmap> images, IReadOnlyList<long> seeds, IReadOnlyList<string?> relativePaths, IReadOnlyList<string> savedPaths) : IDisposable
{
    public IReadOnlyList<SKBitmap> Images { get; } = images;
    public IReadOnlyList<long> Seeds { get; } = seeds;
    public IReadOnlyList<string?> RelativePaths { get; } = relativePaths;
    public IReadOnlyList<string> SavedPaths { get; } = savedPaths;

    public void Dispose()
    {
        foreach (var image in Images) image.Dispose();
    }
}

/// <summary>
/// Stage 2 of an evaluation: generates each reference set's K samples with their recorded seeds and writes them to
/// OUT/samples/&lt;set&gt;/&lt;k&gt;.png. Every sample path is checked to stay inside OUT before anything is written.
/// A set's samples are split across threads, one libtorch thread each (deterministic sampling only: see <see cref="Generate"/>).
/// </summary>
sealed class SetSampler : IDisposable
{
    readonly EvaluationRun _run;
    readonly TorchWorkerPool _workers;
    readonly Stopwatch _clock = new();

    public SetSampler(EvaluationRun run)
    {
        _run = run;
        // A target id names its samples' folder: one that leads outside the output folder is refused before anything is sampled.
        if (run.Options.SaveImages) foreach (var set in run.References.Sets) SamplePath(set, 0);
        Directory.CreateDirectory(run.OutDir);
        var sampling = run.Options.Sampling;
        _workers = new TorchWorkerPool(sampling.Eta == 0 && run.Model.Branch.ConcurrentPredict ? Math.Min(TorchRuntime.Threads, run.SamplesPerSet) : 1, "retribooru-sampling");
    }

    /// <summary>Time spent generating (not writing).</summary>
    public TimeSpan Elapsed => _clock.Elapsed;
    public int Threads => Math.Max(1, _workers.Workers.Count);

    public SampledSet Sample(LoadedReferenceSet set)
    {
        var request = SamplingRequest.For(set, _run.Options);
        _clock.Start();
        var images = Generate(request);
        _clock.Stop();
        var relative = new List<string?>();
        var saved = new List<string>();
        try
        {
            for (int k = 0; k < images.Count; k++)
            {
                if (!_run.Options.SaveImages) { relative.Add(null); continue; }
                var full = SamplePath(set.Set, k);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                AtomicFile.WriteAllBytes(full, ImageTensor.EncodePng(images[k]));
                relative.Add(RelativePath(set.Set, k));
                saved.Add(full);
            }
        }
        catch
        {
            foreach (var image in images) image.Dispose();
            throw;
        }
        return new SampledSet(images, request.Seeds, relative, saved);
    }

    static string RelativePath(EvaluationSet set, int k) => $"samples/{set.Id}/{k}.png";

    string SamplePath(EvaluationSet set, int k) => SafePath.Under(_run.OutDir, RelativePath(set, k), $"{_run.References.ManifestPath}: the sample path made from a target id");

    /// <summary>
    /// The K samples of one reference set, each from its own recorded seed. With deterministic sampling (eta 0) they are
    /// generated as batches split across the workers (a sample then differs from its alone-generated self only by float
    /// rounding); otherwise one at a time, because the per-step noise of a batch comes from one generator.
    /// </summary>
    List<SKBitmap> Generate(SamplingRequest request)
    {
        var (model, branch, sampling) = (_run.Model.Model, _run.Model.Branch, _run.Options.Sampling);
        var images = new List<SKBitmap>();
        using var scope = NewDisposeScope();
        if (sampling.Eta == 0)
        {
            int count = request.Seeds.Count;
            var generated = ReferenceSampler.GenerateSplit(model, branch, Enumerable.Repeat(request.Prompt, count).ToList(), Enumerable.Repeat(request.Crops, count).ToList(),
                sampling, request.Seeds, _workers.Workers);
            for (int k = 0; k < count; k++) images.Add(ImageTensor.ToBitmap(generated[k]));
            return images;
        }
        foreach (var seed in request.Seeds)
        {
            var generated = ReferenceSampler.Generate(model, branch, [request.Prompt], [request.Crops], sampling with { Seed = seed });
            images.Add(ImageTensor.ToBitmap(generated[0]));
        }
        return images;
    }

    public void Dispose() => _workers.Dispose();
}
