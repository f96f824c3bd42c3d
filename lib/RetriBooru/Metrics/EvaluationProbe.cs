using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics;

/// <summary>A probe ready for evaluation: the probe, its held-out report and whether it was trained now or loaded from the cache.</summary>
public sealed record PreparedProbe(AttributeProbe Probe, ProbeReport Report, bool FromCache, int SkippedImages)
{
    /// <summary>Pictures of new random characters it trained on; 0 when it trained on the dataset's own pictures.</summary>
    public int WorldPictures { get; init; }

    /// <summary>The shared folder its weights were loaded from (trained for another dataset), its accuracy measured on this one; null otherwise.</summary>
    public string? WeightsSharedFrom { get; init; }

    /// <summary>One line saying what the probe trained on and what its accuracy is measured on.</summary>
    public string Training
    {
        get
        {
            var recipe = $"{Report.Options.Epochs} epochs, shifts up to {Report.Options.ShiftPixels} px{(Report.Options.Mirror ? ", mirrored" : "")}";
            return WorldPictures > 0
                ? $"{Report.TrainCount} pictures of new random characters (none of the dataset's), {recipe}; accuracy on the dataset's {Report.HeldOutCount} labelled pictures"
                : $"{Report.TrainCount} of the dataset's labelled pictures, {recipe}; accuracy on the other {Report.HeldOutCount}";
        }
    }
}

/// <summary>The labelled pictures a probe is trained on: a dataset, its records and the image size they are read at (the generations' size).</summary>
public sealed record ProbeData(string DatasetDir, IReadOnlyList<ImageRecord> Records, int ImageSize);

/// <summary>
/// The attribute probe of an evaluation suite, trained on a synthetic dataset's ground truth (<c>attributes.jsonl</c>).
/// The probe sees images downscaled to the model's image size first (as the generations are), so it is judged on the
/// same blur it must read. The trained probe is cached in <c>&lt;dataset&gt;/probe/</c> with a key made of the
/// attributes file's SHA-256, the records, the schema and the options; a mismatch retrains.
/// </summary>
public static class EvaluationProbe
{
    public const string Folder = "probe";
    const string KeyFile = "probe-key.json";

    /// <summary>The attributes the probe reads, with the prompt tag that asks for each value (so prompt consistency can check it).</summary>
    public static AttributeSchema SynthSchema()
    {
        static AttributeSpec Spec(string name, Func<string, string>? tag = null)
        {
            var values = SynthAttributesFile.Vocabularies[name];
            return new AttributeSpec(name, values, tag is null ? null : values.ToDictionary(v => v, tag));
        }
        // Garment colours have no tag of their own (the tag joins colour and garment, e.g. red_skirt), so no prompt asks them
        // alone; they are still predicted (and answered as VQA) but only named attributes are checked for consistency.
        return new AttributeSchema([
            Spec("hair_color", v => v + "_hair"),
            Spec("hair_style", SynthVocabulary.HairStyleTag),
            Spec("eye_color", v => v + "_eyes"),
            Spec("accessory"),
            Spec("top", SynthVocabulary.GarmentTag),
            Spec("top_color"),
            Spec("bottom", SynthVocabulary.GarmentTag),
            Spec("bottom_color"),
            Spec("pose"),
            Spec("expression"),
            Spec("background", v => v switch { "simple" => "simple_background", "gradient" => "gradient_background", "sky" => "blue_sky", _ => v }),
        ]);
    }

    /// <summary>Null when the dataset has no <c>attributes.jsonl</c> (a real Danbooru folder).</summary>
    /// <param name="worldPictures">
    /// 0: train on 80% of the dataset's labelled pictures and report accuracy on the rest. N &gt; 0: train on N pictures
    /// of new random characters drawn by the synthetic generator (<see cref="SynthGenerator.RenderIndependentPictures"/>,
    /// seeded from the options' seed) and report accuracy on every labelled picture of the dataset, none of which it saw;
    /// a probe trained on a few characters' pictures learns who they are rather than what they wear.
    /// </param>
    /// <param name="worldCache">
    /// With <paramref name="worldPictures"/> &gt; 0 and <paramref name="useCache"/>: a folder shared between datasets
    /// (the runner's <c>RUNS/.cache/probe-world</c>) where the trained weights are kept, keyed by everything the training
    /// depends on and nothing of the dataset's: a probe of new characters is the same whichever dataset it will score, so a
    /// second dataset with the same seed loads it and only measures its accuracy on its own pictures. Null: no sharing.
    /// </param>
    public static PreparedProbe? Prepare(ProbeData data, AttributeProbeOptions options, bool useCache, List<string> notes, IProgress<string>? progress = null, int worldPictures = 0,
        string? worldCache = null)
    {
        if (worldPictures < 0 || worldPictures > MaxWorldPictures) throw new ArgumentException($"the probe's world pictures must be 0..{MaxWorldPictures}, got {worldPictures}");
        var (datasetDir, records, imageSize) = (data.DatasetDir, data.Records, data.ImageSize);
        var attributesPath = Path.Combine(datasetDir, SynthAttributesFile.FileName);
        if (!File.Exists(attributesPath)) return null;
        var attributes = SynthAttributesFile.Read(attributesPath);
        var schema = SynthSchema();
        var byId = records.ToDictionary(r => r.Id, StringComparer.Ordinal);
        var entries = attributes.Where(a => byId.ContainsKey(a.Id)).OrderBy(a => a.Id, StringComparer.Ordinal)
            .Select(a => new LabelledImage(ManifestReader.Resolve(datasetDir, byId[a.Id].Image),
                schema.Attributes.ToDictionary(s => s.Name, s => SynthAttributesFile.Value(a, s.Name))))
            .ToList();
        if (entries.Count < 4)
        {
            notes.Add($"{attributesPath}: only {entries.Count} labelled images match records; the attribute probe needs at least 4, so probe scores are omitted");
            return null;
        }
        var folder = Path.Combine(datasetDir, Folder);
        var key = Key(attributesPath, entries, schema, imageSize, options, worldPictures);
        if (useCache && TryLoad(folder, key) is { } cached)
        {
            progress?.Report($"attribute probe loaded from {folder}");
            return Readable(cached with { WorldPictures = worldPictures }, schema, notes);
        }
        using var loaded = ProbeSamples.Load(entries, schema, imageSize);
        foreach (var (path, reason) in loaded.Skipped.Take(5)) notes.Add($"probe training skipped {path}: {reason}");
        if (loaded.Skipped.Count > 5) notes.Add($"probe training skipped {loaded.Skipped.Count} images in all");
        var epochs = new Progress<ProbeEpoch>(e => progress?.Report($"probe epoch {e.Epoch}/{e.Epochs}: loss {e.MeanLoss:F3}"));
        AttributeProbe probe;
        ProbeReport report;
        string? sharedFrom = null;
        if (worldPictures == 0)
        {
            progress?.Report($"training the attribute probe on {entries.Count} labelled images ({options.Epochs} epochs)");
            (probe, report) = AttributeProbe.Train(schema, loaded.Samples, options, epochs);
        }
        else
        {
            if (loaded.Samples.Count == 0) throw new InvalidDataException($"{datasetDir}: none of the {entries.Count} labelled pictures could be read, so the attribute probe's accuracy cannot be measured");
            int renderSize = PictureSize(entries, imageSize);
            var worldKey = WorldKey(schema, renderSize, imageSize, options, worldPictures, TorchRuntime.Threads);
            var shared = useCache && worldCache is not null ? Path.Combine(worldCache, worldKey[..16]) : null;
            var trained = shared is not null ? TryLoadWorld(shared, worldKey) : null;
            if (trained is null && useCache && ShippedWorld(worldKey, shared, notes) is { } shipped)
                (trained, shared) = shipped;
            if (trained is not null)
            {
                probe = trained.Probe;
                sharedFrom = shared;
                progress?.Report($"attribute probe of {trained.TrainCount} new characters loaded from {shared}; measuring it on the dataset's {loaded.Samples.Count} labelled pictures");
                report = new ProbeReport(probe.Accuracy(loaded.Samples), trained.TrainCount, loaded.Samples.Count, trained.FinalTrainLoss, options);
            }
            else
            {
                progress?.Report($"rendering {worldPictures} pictures of new characters at {renderSize} px for the attribute probe");
                using var world = RenderWorld(worldPictures, renderSize, imageSize, Seeding.DeriveLong(options.Seed, "probe-world"), schema);
                progress?.Report($"training the attribute probe on them ({options.Epochs} epochs); accuracy on the dataset's {loaded.Samples.Count} labelled pictures");
                (probe, report) = AttributeProbe.Train(schema, world.Samples, loaded.Samples, options, epochs);
                if (shared is not null) SaveWorld(shared, worldKey, probe, report, notes);
            }
        }
        if (useCache)
        {
            try
            {
                probe.Save(folder);
                AtomicFile.WriteAllText(Path.Combine(folder, KeyFile), JsonSerializer.Serialize(new CachedProbe(key, report, loaded.Skipped.Count), CacheJson));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                notes.Add($"the attribute probe could not be cached in {folder}: {e.Message}");
            }
        }
        return Readable(new PreparedProbe(probe, report, false, loaded.Skipped.Count) { WorldPictures = worldPictures, WeightsSharedFrom = sharedFrom }, schema, notes);
    }

    /// <summary>Marks the attributes the probe cannot read (so prompt consistency leaves them out) and notes which.</summary>
    static PreparedProbe Readable(PreparedProbe prepared, AttributeSchema schema, List<string> notes)
    {
        var unreadable = AttributeProbe.UnreadableAttributes(schema, prepared.Report);
        prepared.Probe.Unreadable = unreadable.ToHashSet();
        if (unreadable.Count > 0)
            notes.Add("prompt consistency and readability leave out " + string.Join(", ", unreadable.Select(name =>
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{name} (probe accuracy {prepared.Report.HeldOutAccuracy[name]:F3}, chance {1.0 / schema[name].Values.Count:F3})")))
                + $": the probe reads them at less than {AttributeProbe.ReadableOverChance}x chance");
        return prepared;
    }

    /// <summary>Most pictures of the probe's training world (each costs about 12 KB of bitmap and tensor at 32 px).</summary>
    public const int MaxWorldPictures = 200_000;

    /// <summary>The side of the dataset's pictures (the first readable one), so the world is drawn at the dataset's resolution and downscaled the same way.</summary>
    static int PictureSize(IReadOnlyList<LabelledImage> entries, int fallback)
    {
        foreach (var entry in entries)
        {
            using var codec = SkiaSharp.SKCodec.Create(entry.ImagePath);
            if (codec is not null && codec.Info.Width >= 16 && codec.Info.Width <= 2048) return codec.Info.Width;
        }
        return fallback;
    }

    internal static LoadedProbeSamples RenderWorld(int pictures, int renderSize, int imageSize, long seed, AttributeSchema schema)
    {
        var rendered = SynthGenerator.RenderIndependentPictures(pictures, renderSize, seed);
        var samples = new List<ProbeSample>(rendered.Count);
        try
        {
            foreach (var (image, attributes) in rendered)
            {
                using (image)
                    samples.Add(new ProbeSample(ImageOps.Resize(image, imageSize, imageSize),
                        schema.Attributes.ToDictionary(a => a.Name, a => SynthAttributesFile.Value(attributes, a.Name)), $"probe world picture {attributes.Id}"));
            }
        }
        catch
        {
            // A failure midway (a resize, a label) frees what was drawn and resized so far, not only what the loop reached.
            foreach (var (image, _) in rendered) image.Dispose();
            foreach (var sample in samples) sample.Image.Dispose();
            throw;
        }
        return new LoadedProbeSamples(samples, []);
    }

    static PreparedProbe? TryLoad(string folder, string key)
    {
        var keyPath = Path.Combine(folder, KeyFile);
        if (!File.Exists(keyPath)) return null;
        try
        {
            var cached = JsonSerializer.Deserialize<CachedProbe>(RegularFile.ReadAllText(keyPath, "probe cache key"), CacheJson);
            if (cached is null || cached.Key != key) return null;
            return new PreparedProbe(AttributeProbe.Load(folder), cached.Report, true, cached.Skipped);
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidDataException or NotSupportedException)
        {
            return null; // a broken cache is retrained and overwritten
        }
    }

    /// <summary>What a probe of new characters depends on: the protocol (the generator and the training code), the world's size and render size, the schema, the options with their seed, and the thread count (libtorch's reductions split by it).</summary>
    internal static string WorldKey(AttributeSchema schema, int renderSize, int imageSize, AttributeProbeOptions options, int worldPictures, int threads)
    {
        var text = new StringBuilder();
        text.Append(EvaluationProtocol.Version).Append("|world=").Append(worldPictures).Append("|render=").Append(renderSize).Append("|size=").Append(imageSize);
        text.Append("|threads=").Append(threads);
        text.Append('|').Append(string.Join(",", schema.Attributes.Select(a => a.Name + "=" + string.Join("/", a.Values))));
        text.Append('|').Append(JsonSerializer.Serialize(options));
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    internal sealed record WorldProbe(AttributeProbe Probe, int TrainCount, double FinalTrainLoss);

    internal static WorldProbe? TryLoadWorld(string folder, string key)
    {
        var keyPath = Path.Combine(folder, WorldKeyFile);
        if (!File.Exists(keyPath)) return null;
        try
        {
            var cached = JsonSerializer.Deserialize<CachedWorld>(RegularFile.ReadAllText(keyPath, "probe world key"), CacheJson);
            if (cached is null || cached.Key != key || cached.TrainCount < 1) return null;
            return new WorldProbe(AttributeProbe.Load(folder), cached.TrainCount, cached.FinalTrainLoss);
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidDataException or NotSupportedException)
        {
            return null; // a broken entry is retrained and replaced
        }
    }

    /// <summary>Under the library's resources: probes of new characters shipped with it (the repository's <c>models/probe-world/KEY16/</c>).</summary>
    internal const string ShippedResourcePrefix = "probe-world/";

    /// <summary>The first 16 hex digits of the keys of the probes this build ships (tests check the quickstart's is among them).</summary>
    internal static IReadOnlyList<string> ShippedKeys =>
        ShippedResources().Select(r => r.Relative.Split('/')[0]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    static IEnumerable<(string Resource, string Relative)> ShippedResources() =>
        typeof(EvaluationProbe).Assembly.GetManifestResourceNames()
            .Select(r => (Resource: r, Relative: r.Replace('\\', '/')))
            .Where(r => r.Relative.StartsWith(ShippedResourcePrefix, StringComparison.Ordinal))
            .Select(r => (r.Resource, r.Relative[ShippedResourcePrefix.Length..]));

    /// <summary>
    /// A probe shipped with the library whose full key is <paramref name="key"/> (the quickstart's world probe at its
    /// seed, 32 px and 2 threads: the 45 s it takes to train are most of a fresh quickstart's evaluation setup, and a
    /// shipped one scores alike on every CPU). Copied into <paramref name="shared"/> when given (built aside, then moved),
    /// else read from a temporary folder; null when none matches.
    /// </summary>
    internal static (WorldProbe Probe, string? From)? ShippedWorld(string key, string? shared, List<string> notes)
    {
        var files = ShippedResources().Where(r => r.Relative.StartsWith(key[..16] + "/", StringComparison.Ordinal)).ToList();
        if (files.Count == 0) return null;
        var staging = Path.Combine(shared is null ? Path.GetTempPath() : Path.GetDirectoryName(Path.GetFullPath(shared))!, $"shipped-probe-{Guid.NewGuid():N}");
        try
        {
            foreach (var (resource, relative) in files)
            {
                var target = SafePath.Under(staging, relative[17..], "shipped probe file");
                using var source = typeof(EvaluationProbe).Assembly.GetManifestResourceStream(resource)!;
                Directory.CreateDirectory(staging);
                using var output = File.Create(target);
                source.CopyTo(output);
            }
            if (TryLoadWorld(staging, key) is not { } probe) return null; // same first digits, another key: train
            if (shared is null) return (probe, $"the library (built-in {ShippedResourcePrefix}{key[..16]})");
            try
            {
                if (Directory.Exists(shared)) Directory.Delete(shared, recursive: true); // a broken or stale entry (its key did not match)
                Directory.Move(staging, shared);
            }
            catch (IOException) when (File.Exists(Path.Combine(shared, WorldKeyFile))) { } // another process placed it first
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                notes.Add($"the shipped attribute probe could not be copied to {shared}: {e.Message}");
            }
            return (probe, $"the library (built-in {ShippedResourcePrefix}{key[..16]})");
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); }
            catch (IOException) { } // left beside the cache; its name says what it is
        }
    }

    /// <summary>Writes the entry beside its place and moves it in whole, so a reader never sees half of one; a concurrent writer's entry wins.</summary>
    static void SaveWorld(string folder, string key, AttributeProbe probe, ProbeReport report, List<string> notes)
    {
        var staging = $"{folder}.tmp-{Guid.NewGuid():N}";
        try
        {
            probe.Save(staging);
            AtomicFile.WriteAllText(Path.Combine(staging, WorldKeyFile), JsonSerializer.Serialize(new CachedWorld(key, report.TrainCount, report.FinalTrainLoss), CacheJson));
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); // a broken or stale entry (its key did not match)
            Directory.Move(staging, folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!File.Exists(Path.Combine(folder, WorldKeyFile))) notes.Add($"the attribute probe could not be shared in {folder}: {e.Message}");
        }
        finally
        {
            try { if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); }
            catch (IOException) { } // left beside the cache; its name says what it is
        }
    }

    const string WorldKeyFile = "world-key.json";

    sealed record CachedWorld([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("train_count")] int TrainCount,
        [property: JsonPropertyName("final_train_loss")] double FinalTrainLoss);

    static string Key(string attributesPath, IReadOnlyList<LabelledImage> entries, AttributeSchema schema, int imageSize, AttributeProbeOptions options, int worldPictures)
    {
        var text = new StringBuilder();
        // The protocol names how the probe is trained and scored (code, not data), and the world's size is an input.
        text.Append(EvaluationProtocol.Version).Append("|world=").Append(worldPictures).Append('|');
        text.Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(attributesPath)))).Append('|');
        foreach (var e in entries)
        {
            var info = new FileInfo(e.ImagePath);
            text.Append(Path.GetFileName(e.ImagePath)).Append(':').Append(info.Exists ? info.Length : -1).Append(';');
        }
        text.Append('|').Append(string.Join(",", schema.Attributes.Select(a => a.Name + "=" + string.Join("/", a.Values))));
        text.Append('|').Append(imageSize).Append('|').Append(JsonSerializer.Serialize(options));
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    // A diverged training's NaN loss must not make the cache write throw.
    static readonly JsonSerializerOptions CacheJson = new() { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    sealed record CachedProbe([property: JsonPropertyName("key")] string Key, [property: JsonPropertyName("report")] ProbeReport Report,
        [property: JsonPropertyName("skipped")] int Skipped);
}
