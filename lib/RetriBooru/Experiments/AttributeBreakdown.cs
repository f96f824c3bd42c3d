using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Imaging;
using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using SkiaSharp;

namespace RetriBooru.Experiments;

/// <summary>
/// How often one evaluation's samples show each identity attribute its references show: the share of samples whose
/// probe reading of the attribute equals the references' majority value. <see cref="Agreement"/> is the samples' mean
/// attribute agreement recomputed from the same readings, which must equal the run's (<see cref="RecordedAgreement"/>)
/// when the dataset's probe is the one that scored the run.
/// </summary>
public sealed record AttributeRates(int Point, string PointLabel, string Model, string Scheme, string Split, int Samples,
    IReadOnlyDictionary<string, double> Rates, double Agreement, double? RecordedAgreement)
{
    /// <summary>Whether the re-read agreement is the run's own (up to float summation order).</summary>
    public bool MatchesRun => RecordedAgreement is double recorded && Math.Abs(recorded - Agreement) < 1e-9;
}

/// <summary>
/// Re-reads a finished run's samples with its dataset's attribute probe and reports attribute agreement per attribute
/// (hair colour, top colour, ...) instead of the mean over eight: which parts of a reference a model copies. The
/// expected values are those of the scorer (majority over the set's references of the ground truth of the pictures
/// they were cut from); the evaluations' sample PNGs hold the exact pixels that were scored.
/// </summary>
public static class AttributeBreakdown
{
    public const string CsvFile = "metrics/attributes.csv";

    /// <summary>The model name of the rows that read real pictures instead of samples (<see cref="Read"/>'s <c>realPictures</c>).</summary>
    public const string RealPicturesModel = "real pictures";

    /// <param name="realPictures">
    /// Also one row per split for real pictures, scored exactly like the samples: for every reference set of the split, the
    /// dataset's pictures of the set's character in the set's outfit (its target among them, its references' sources left
    /// out), read by the same probe against the same expected values. What a model that copied its references perfectly
    /// would score: the ceiling of each attribute as this probe reads this world's pictures.
    /// </param>
    /// <param name="skipped">Receives one line per real picture that could not be read (it is left out of its row).</param>
    public static IReadOnlyList<AttributeRates> Read(RunResults results, string? split = null, CancellationToken cancellationToken = default,
        bool realPictures = false, List<string>? skipped = null)
    {
        var dataset = DatasetOf(results.Run.Path);
        var attributesPath = Path.Combine(dataset, SynthAttributesFile.FileName);
        if (!File.Exists(attributesPath)) throw new InvalidDataException($"{dataset}: no {SynthAttributesFile.FileName}: attribute agreement needs a synthetic dataset's ground truth");
        var truth = AttributeGroundTruth.FromSynth(SynthAttributesFile.Read(attributesPath));
        var crops = new CropIndex(dataset);
        using var probe = AttributeProbe.Load(Path.Combine(dataset, EvaluationProbe.Folder));
        var rates = new List<AttributeRates>();
        var unknownCrops = new List<string>();
        foreach (var evaluation in results.Evaluations.Where(e => split is null || e.Split == split))
        {
            var tally = new Tally();
            foreach (var set in evaluation.Sets)
            {
                var references = new List<(Concept, string)>();
                foreach (var path in set.References)
                    if (crops.Find(path) is { } source) references.Add(source);
                    else unknownCrops.Add(path);
                var expected = truth.Expected(references);
                if (expected.IsEmpty) continue; // the scorer gives such a set no attribute agreement either
                foreach (var samplePath in set.Samples)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    // The probe's intermediates go with the sample: memory stays flat over thousands of samples.
                    using var scope = TorchSharp.torch.NewDisposeScope();
                    using var image = DecodeSample(samplePath);
                    tally.Add(expected, probe.Predict(image));
                }
            }
            if (tally.Count == 0) continue;
            rates.Add(tally.Rates(evaluation.Point, evaluation.PointLabel, evaluation.Model, evaluation.Scheme, evaluation.Split,
                evaluation.Summary.TryGetValue("attribute_agreement", out var recorded) ? recorded.Mean : null));
        }
        // A reference the dataset does not hold would silently drop its set (and a whole evaluation): say which instead.
        if (unknownCrops.Count > 0)
            throw new InvalidDataException($"{dataset}: {unknownCrops.Count} reference crop(s) of the run's evaluations are not in this dataset's manifests (first: {unknownCrops[0]}); the run was scored on another dataset");
        if (realPictures)
            foreach (var group in results.Evaluations.Where(e => split is null || e.Split == split).GroupBy(e => e.Split))
                if (RealPictureRates(group.Key, group.ToList(), dataset, truth, crops, probe, skipped ?? [], cancellationToken) is { } real) rates.Add(real);
        return rates;
    }

    /// <summary>The real-pictures row of one split (null when no set of it has pictures to read).</summary>
    static AttributeRates? RealPictureRates(string split, IReadOnlyList<ModelEvaluation> evaluations, string dataset, AttributeGroundTruth truth,
        CropIndex crops, AttributeProbe probe, List<string> skipped, CancellationToken cancellationToken)
    {
        // Pictures are read at the samples' size: the probe is scored on what a sample could show.
        var firstSample = evaluations.SelectMany(e => e.Sets).SelectMany(s => s.Samples).FirstOrDefault();
        if (firstSample is null) return null;
        int size;
        using (var sample = DecodeSample(firstSample)) size = sample.Width;
        var examples = crops.Examples;
        var byTarget = examples.GroupBy(e => e.Target, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var tally = new Tally();
        // Every model of a split is scored on the same sets; a set is counted once.
        foreach (var set in evaluations.SelectMany(e => e.Sets).DistinctBy(s => s.Id))
        {
            if (!byTarget.TryGetValue(set.Id, out var target)) continue;
            var references = set.References.Select(crops.Find).OfType<(Concept Concept, string SourceId)>().ToList();
            var expected = truth.Expected(references);
            if (expected.IsEmpty) continue;
            var sources = references.Select(r => r.SourceId).ToHashSet(StringComparer.Ordinal);
            var sameLook = byTarget.Values.Where(e => e.Character == target.Character && e.ClothingId == target.ClothingId && !sources.Contains(e.Target))
                .OrderBy(e => e.Target, StringComparer.Ordinal);
            foreach (var example in sameLook)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = TorchSharp.torch.NewDisposeScope();
                SKBitmap image;
                try { image = ImageTensor.LoadBitmap(ManifestReader.Resolve(dataset, example.Image), size); }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    // One unreadable picture is named and skipped; the row says how many it read.
                    skipped.Add($"{Path.Combine(dataset, example.Image)}: {e.Message}");
                    continue;
                }
                using (image) tally.Add(expected, probe.Predict(image));
            }
        }
        return tally.Count == 0 ? null : tally.Rates(-1, "", RealPicturesModel, "b", split, recordedAgreement: null);
    }

    /// <summary>Per-attribute hits of probe readings against expected values, and their mean agreement.</summary>
    sealed class Tally
    {
        readonly Dictionary<string, int> _hits = AttributeAgreement.IdentityAttributes.ToDictionary(a => a, _ => 0);
        readonly Dictionary<string, int> _asked = AttributeAgreement.IdentityAttributes.ToDictionary(a => a, _ => 0);
        double _agreementSum;

        public int Count { get; private set; }

        public void Add(ExpectedAttributes expected, IReadOnlyDictionary<string, string> read)
        {
            foreach (var (name, value) in expected.Face.Concat(expected.Clothes))
            {
                _asked[name]++;
                if (read.TryGetValue(name, out var got) && got == value) _hits[name]++;
            }
            _agreementSum += expected.Agreement(read).Combined ?? 0;
            Count++;
        }

        public AttributeRates Rates(int point, string pointLabel, string model, string scheme, string split, double? recordedAgreement) =>
            new(point, pointLabel, model, scheme, split, Count,
                _asked.Where(kv => kv.Value > 0).ToDictionary(kv => kv.Key, kv => _hits[kv.Key] / (double)kv.Value), _agreementSum / Count, recordedAgreement);
    }

    /// <summary>One row per evaluation, one column per attribute (empty where no reference showed it).</summary>
    public static string ToCsv(IReadOnlyList<AttributeRates> rates)
    {
        var csv = new StringBuilder();
        csv.AppendLine(string.Join(",", new[] { "point", "point_label", "model", "scheme", "split", "samples" }
            .Concat(AttributeAgreement.IdentityAttributes).Concat(["attribute_agreement", "run_attribute_agreement"])));
        static string F(double? x) => x is double v ? v.ToString("R", CultureInfo.InvariantCulture) : "";
        foreach (var r in rates)
            csv.AppendLine(string.Join(",", new[] { r.Point.ToString(CultureInfo.InvariantCulture), Csv(r.PointLabel), r.Model, r.Scheme, r.Split, r.Samples.ToString(CultureInfo.InvariantCulture) }
                .Concat(AttributeAgreement.IdentityAttributes.Select(a => F(r.Rates.TryGetValue(a, out var v) ? v : null)))
                .Concat([F(r.Agreement), F(r.RecordedAgreement)])));
        return csv.ToString();
    }

    static string Csv(string cell) => cell.Contains(',') || cell.Contains('"') ? "\"" + cell.Replace("\"", "\"\"") + "\"" : cell;

    /// <summary>The dataset the run was scored on, from its evaluation_suite.json.</summary>
    static string DatasetOf(string runFolder)
    {
        var path = Path.Combine(runFolder, "evaluation_suite.json");
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: missing; the run does not say which dataset (and probe) scored it");
        JsonNode? suite;
        try { suite = JsonNode.Parse(RegularFile.ReadAllText(path, "evaluation suite description")); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not JSON ({e.Message})", e); }
        var dataset = suite?["dataset"]?.GetValue<string>();
        if (string.IsNullOrEmpty(dataset)) throw new InvalidDataException($"{path}: no \"dataset\" recorded");
        if (!Directory.Exists(dataset)) throw new InvalidDataException($"{path}: its dataset {dataset} no longer exists");
        return dataset;
    }

    /// <summary>
    /// Every reference crop of the dataset's manifests with its concept and the picture it was cut from, found by full path
    /// or, for an evaluation reused from the stage cache of another dataset folder with the same content (stages are keyed
    /// by content), by its path inside that folder.
    /// </summary>
    sealed class CropIndex
    {
        readonly Dictionary<string, (Concept Concept, string SourceId)> _byFullPath = new(StringComparer.Ordinal);
        readonly Dictionary<string, (Concept Concept, string SourceId)> _byRelativePath = new(StringComparer.Ordinal);
        readonly SortedSet<int> _relativeDepths = new(Comparer<int>.Create((a, b) => b.CompareTo(a)));
        readonly List<TrainingExample> _examples = [];

        /// <summary>Every example of the dataset's manifests (both schemes).</summary>
        public IReadOnlyList<TrainingExample> Examples => _examples;

        public CropIndex(string dataset)
        {
            foreach (var scheme in Enum.GetValues<ReferenceScheme>())
            {
                var manifest = Path.Combine(dataset, DatasetLayout.ManifestPath(scheme));
                if (!File.Exists(manifest)) continue;
                foreach (var example in ManifestReader.Read(manifest))
                {
                    _examples.Add(example);
                    foreach (var reference in example.References)
                    {
                        var full = Path.GetFullPath(SafePath.Under(dataset, reference.Image, "reference crop"));
                        var relative = Segments(Path.GetRelativePath(dataset, full));
                        _byFullPath[full] = (reference.Concept, reference.SourceId);
                        _byRelativePath[string.Join('/', relative)] = (reference.Concept, reference.SourceId);
                        _relativeDepths.Add(relative.Length);
                    }
                }
            }
        }

        public (Concept Concept, string SourceId)? Find(string path)
        {
            var full = Path.GetFullPath(path);
            if (_byFullPath.TryGetValue(full, out var source)) return source;
            var segments = Segments(full);
            foreach (int depth in _relativeDepths)
                if (depth <= segments.Length && _byRelativePath.TryGetValue(string.Join('/', segments[^depth..]), out source)) return source;
            return null;
        }

        static string[] Segments(string path) => path.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
    }

    static SKBitmap DecodeSample(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: sample image missing (was the stage cache cleaned?)", path);
        return SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path}: not a readable image");
    }
}
