using RetriBooru.Settings;
using System.Security.Cryptography;
using RetriBooru.Data;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// Embeds each distinct image once: an evaluation embeds the same reference crops for every sample and every score
/// (identity, leakage), so results are keyed by the SHA-256 of the pixels. The wrapped embedder is deterministic, so
/// caching does not change any number. <see cref="EmbedBatch"/> passes the images it has not seen to the wrapped
/// embedder in one batch.
/// <para>Safe to call from several threads: the dictionary is locked. It was not when the identity windows were once
/// embedded in parallel and two runs disagreed on one window; concurrent inserts into an unlocked Dictionary are a
/// possible cause (a stress test did not reproduce it, and neither did parallel Skia crops and resizes). The evaluation
/// itself now calls it from one thread and gets its speed from batches and ONNX Runtime's intra-op threads.</para>
/// </summary>
public sealed class EvaluationEmbeddingCache(IImageEmbedder inner) : IImageEmbedder
{
    readonly Dictionary<string, float[]> _cache = new(StringComparer.Ordinal);
    readonly Lock _gate = new();
    int _computed, _hits;

    public string Name => inner.Name;
    public int Dimension => inner.Dimension;
    public int Computed { get { lock (_gate) return _computed; } }
    public int Hits { get { lock (_gate) return _hits; } }

    public float[] Embed(SKBitmap image) => EmbedBatch([image])[0];

    public float[][] EmbedBatch(IReadOnlyList<SKBitmap> images)
    {
        var keys = images.Select(KeyOf).ToArray();
        var result = new float[images.Count][];
        // The first image of each key not cached yet; the wrapped embedder runs outside the lock.
        var missing = new List<int>();
        lock (_gate)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < images.Count; i++)
                if (_cache.TryGetValue(keys[i], out var cached)) { result[i] = cached; _hits++; }
                else if (seen.Add(keys[i])) missing.Add(i);
                else _hits++; // the same pixels twice in one batch: embedded once
        }
        if (missing.Count > 0)
        {
            var computed = inner.EmbedBatch(missing.Select(i => images[i]).ToList());
            lock (_gate)
                for (int m = 0; m < missing.Count; m++)
                {
                    // Another thread may have stored the same pixels meanwhile: keep the first vector (they are equal anyway).
                    if (_cache.TryAdd(keys[missing[m]], computed[m])) _computed++;
                }
        }
        lock (_gate)
            for (int i = 0; i < images.Count; i++)
                result[i] ??= _cache[keys[i]];
        return result;
    }

    /// <summary>
    /// KID's raw features of <paramref name="images"/>, and, when <paramref name="features"/> is the embedder this cache
    /// wraps, their embeddings kept as well: an embedding is the normalised raw feature of the same ONNX run, so a sample's
    /// whole-image identity window (the same pixels) is not run through ResNet18 a second time.
    /// </summary>
    public float[][] FeaturesKeepingEmbeddings(ResNet18Embedder features, IReadOnlyList<SKBitmap> images)
    {
        var raw = features.FeaturesBatch(images);
        if (!ReferenceEquals(features, inner)) return raw;
        var keys = images.Select(KeyOf).ToArray();
        lock (_gate)
            for (int i = 0; i < images.Count; i++)
                if (_cache.TryAdd(keys[i], VectorMath.Normalize(raw[i]))) _computed++;
        return raw;
    }

    static string KeyOf(SKBitmap image)
    {
        using var rgba = image.ColorType == SKColorType.Rgba8888 ? null : image.Copy(SKColorType.Rgba8888);
        var bytes = (rgba ?? image).Bytes;
        return $"{image.Width}x{image.Height}:{Convert.ToHexString(SHA256.HashData(bytes))}";
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>
/// The real examples a baseline is computed from: the dataset, its calibration manifest (scheme b), the image size the
/// targets are read at (the model's) and the seed of every choice among the examples.
/// </summary>
public sealed record CalibrationImages(string DatasetDir, IReadOnlyList<TrainingExample> Manifest, int ImageSize, long Seed);

/// <summary>How a baseline is drawn: up to <paramref name="Examples"/> examples spread over characters, and the quantile of the cross-character scores it takes.</summary>
public sealed record BaselineDraw(int Examples, double Quantile);

/// <summary>A manifest example loaded for scoring: the target at the model's image size and its reference crops.</summary>
sealed class LoadedExample(TrainingExample example, SKBitmap target, IReadOnlyList<ScoringReference> references) : IDisposable
{
    public TrainingExample Example { get; } = example;
    public SKBitmap Target { get; } = target;
    public IReadOnlyList<ScoringReference> References { get; } = references;

    /// <summary>Null (and the problem added to <paramref name="problems"/>) when a file cannot be read.</summary>
    public static LoadedExample? TryLoad(string datasetDir, TrainingExample example, int imageSize, List<string> problems)
    {
        string current = example.Image;
        var refs = new List<ScoringReference>();
        try
        {
            using var target = ImageTensor.LoadBitmap(ManifestReader.Resolve(datasetDir, example.Image), imageSize);
            foreach (var r in example.References)
            {
                current = r.Image;
                refs.Add(new ScoringReference(ImageTensor.LoadBitmap(ManifestReader.Resolve(datasetDir, r.Image)), r.Concept));
            }
            return new LoadedExample(example, target.Copy(), refs);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            foreach (var r in refs) r.Image.Dispose();
            problems.Add($"{Path.Combine(datasetDir, current)}: {e.Message}"); // only named: the value may be one that SafePath refused
            return null;
        }
    }

    public void Dispose()
    {
        Target.Dispose();
        foreach (var r in References) r.Image.Dispose();
    }
}

/// <summary>
/// The two calibration constants, computed from real dataset images exactly the way generations are scored (whole
/// image at the model's size, no mask, against the reference crops), so a real picture of the character scores
/// "honest" by construction:
/// <list type="bullet">
/// <item>identity baseline b (SWD weights) = the 95th percentile (configurable) of the combined identity score of a target image against
/// the references of an example of a <em>different</em> character, over all cross-character pairs of up to N examples
/// spread over characters;</item>
/// <item>leakage baseline beta(character) = mean over up to L examples of that character of
/// max_r sim_nonid(target, r) for its own scheme-b references (leak = 0 then means "shares with its references what a
/// real, different picture of the character shares with its references").</item>
/// </list>
/// </summary>
public static class EvaluationBaselines
{
    /// <param name="SameCharacterMean">For reference: the mean identity score of the same real targets against their own
    /// references (what an honest picture of the character scores; a good model's samples should come near it).</param>
    /// <param name="CrossCharacterMedian">Median score of the cross-character pairs (how far apart the two distributions are).</param>
    public sealed record IdentityBaseline(double Value, double Quantile, int Examples, int Pairs, int Characters, double SameCharacterMean, double CrossCharacterMedian);

    public static IdentityBaseline Identity(IImageEmbedder embedder, CalibrationImages calibration, BaselineDraw draw, List<string> notes, IdentityView view = IdentityView.Whole)
    {
        var (datasetDir, imageSize) = (calibration.DatasetDir, calibration.ImageSize);
        var chosen = IdentityExamples(calibration, draw);
        var loaded = chosen.Select(e => LoadedExample.TryLoad(datasetDir, e, imageSize, notes)).OfType<LoadedExample>().ToList();
        try
        {
            var scores = new List<double>();
            var same = new List<double>();
            double ScoreAgainst(SKBitmap target, LoadedExample references)
            {
                var faces = references.References.Where(r => r.IsFace).Select(r => r.Image).ToList();
                var clothes = references.References.Where(r => r.IsClothing).Select(r => r.Image).ToList();
                var faceBox = EvaluationViews.Locate(view, embedder, target, faces);
                var clothesBox = EvaluationViews.Locate(view, embedder, target, clothes);
                var full = new SKRectI(0, 0, target.Width, target.Height);
                var views = IdentityViews.FromBoxes(target, faces.Count > 0 ? faceBox ?? full : null, clothes.Count > 0 ? clothesBox ?? full : null);
                try { return IdentitySimilarity.Score(embedder, views, faces, clothes).Combined; }
                finally { views.Face?.Dispose(); views.Clothing?.Dispose(); }
            }
            foreach (var a in loaded)
            {
                if (a.References.Count > 0) same.Add(ScoreAgainst(a.Target, a));
                foreach (var b in loaded)
                    if (a.Example.Character != b.Example.Character && b.References.Count > 0) scores.Add(ScoreAgainst(a.Target, b));
            }
            if (scores.Count == 0)
                throw new InvalidDataException($"{datasetDir}: the identity baseline needs readable examples of at least two characters (found {loaded.Select(l => l.Example.Character).Distinct().Count()})");
            scores.Sort();
            return new IdentityBaseline(Math.Min(Bootstrap.Quantile(scores, draw.Quantile), 0.999), draw.Quantile, loaded.Count, scores.Count, loaded.Select(l => l.Example.Character).Distinct().Count(), same.Average(), Bootstrap.Quantile(scores, 0.5));
        }
        finally
        {
            foreach (var l in loaded) l.Dispose();
        }
    }

    /// <summary>
    /// The attribute-agreement counterpart of <see cref="Identity"/>: the probe reads each calibration target (at the
    /// model's size) and its agreement with the attributes expected from the references of an example of a different
    /// character gives the cross-character distribution (its <see cref="BaselineDraw.Quantile"/> is SWD's baseline when SWD
    /// weighs by attributes); agreement with its own references gives the same-character mean (the probe's ceiling on
    /// real pictures). Null when fewer than two characters have ground truth.
    /// </summary>
    public static IdentityBaseline? Attributes(Vqa.AttributeProbe probe, AttributeGroundTruth truth, CalibrationImages calibration, BaselineDraw draw, List<string> notes)
    {
        var (datasetDir, imageSize) = (calibration.DatasetDir, calibration.ImageSize);
        var chosen = IdentityExamples(calibration, draw);
        var predictions = new List<(TrainingExample Example, IReadOnlyDictionary<string, string> Predicted, ExpectedAttributes Expected)>();
        foreach (var example in chosen)
        {
            var expected = truth.Expected(example.References.Select(r => (r.Concept, r.SourceId)));
            if (expected.IsEmpty) continue;
            try
            {
                using var target = ImageTensor.LoadBitmap(ManifestReader.Resolve(datasetDir, example.Image), imageSize);
                predictions.Add((example, probe.Predict(target), expected));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                notes.Add($"{Path.Combine(datasetDir, example.Image)}: {e.Message}"); // only named: the value may be one that SafePath refused
            }
        }
        static double Agreement(IReadOnlyDictionary<string, string> predicted, ExpectedAttributes expected) =>
            expected.Agreement(predicted).Combined ?? 0;
        var cross = new List<double>();
        var same = new List<double>();
        foreach (var a in predictions)
        {
            same.Add(Agreement(a.Predicted, a.Expected));
            foreach (var b in predictions)
                if (a.Example.Character != b.Example.Character) cross.Add(Agreement(a.Predicted, b.Expected));
        }
        int characters = predictions.Select(p => p.Example.Character).Distinct().Count();
        if (cross.Count == 0) return null;
        cross.Sort();
        return new IdentityBaseline(Math.Min(Bootstrap.Quantile(cross, draw.Quantile), 0.999), draw.Quantile, predictions.Count, cross.Count, characters, same.Average(), Bootstrap.Quantile(cross, 0.5));
    }

    /// <summary>Mean over up to <paramref name="examples"/> examples of the character; null when none of them can be read.</summary>
    public static double? Leakage(LeakageScorer scorer, CalibrationImages calibration, string character, int examples, List<string> notes)
    {
        var sims = new List<double>();
        foreach (var example in LeakageExamples(calibration, character, examples))
        {
            using var loaded = LoadedExample.TryLoad(calibration.DatasetDir, example, calibration.ImageSize, notes);
            if (loaded is null) continue;
            var refs = loaded.References.Select(r => new MaskedImage(r.Image, null)).ToList();
            sims.Add(scorer.Score(new MaskedImage(loaded.Target, null), refs, 0).MaxReferenceSimilarity);
        }
        return sims.Count == 0 ? null : Math.Min(sims.Average(), 0.999);
    }

    /// <summary>The examples the identity and attribute-agreement baselines read (a seeded choice spread over characters).</summary>
    public static IReadOnlyList<TrainingExample> IdentityExamples(CalibrationImages calibration, BaselineDraw draw) =>
        SpreadOverCharacters(calibration.Manifest, draw.Examples, Seeding.Stream(calibration.Seed, "identity-baseline"));

    /// <summary>The examples a character's leakage baseline reads (a seeded choice of its own examples).</summary>
    public static IReadOnlyList<TrainingExample> LeakageExamples(CalibrationImages calibration, string character, int examples)
    {
        var own = calibration.Manifest.Where(e => e.Character == character && e.References.Count > 0).OrderBy(e => e.Target, StringComparer.Ordinal).ToArray();
        Seeding.Stream(calibration.Seed, "leakage-baseline/" + character).Shuffle(own);
        return own.Take(examples).ToList();
    }

    /// <summary>Every file an example's scoring reads: the target, then its references.</summary>
    public static IEnumerable<string> FilesOf(IEnumerable<TrainingExample> examples) =>
        examples.SelectMany(e => e.References.Select(r => r.Image).Prepend(e.Image));

    /// <summary>Up to <paramref name="count"/> examples, taken one character at a time in a seeded order.</summary>
    static List<TrainingExample> SpreadOverCharacters(IReadOnlyList<TrainingExample> manifest, int count, Random random)
    {
        var characters = manifest.Select(e => e.Character).Distinct().OrderBy(c => c, StringComparer.Ordinal).ToArray();
        random.Shuffle(characters);
        var queues = characters.Select(c =>
        {
            var items = manifest.Where(e => e.Character == c && e.References.Count > 0).OrderBy(e => e.Target, StringComparer.Ordinal).ToArray();
            random.Shuffle(items);
            return new Queue<TrainingExample>(items);
        }).ToList();
        var chosen = new List<TrainingExample>();
        while (chosen.Count < count && queues.Any(q => q.Count > 0))
            foreach (var q in queues)
                if (chosen.Count < count && q.Count > 0) chosen.Add(q.Dequeue());
        return chosen;
    }
}
