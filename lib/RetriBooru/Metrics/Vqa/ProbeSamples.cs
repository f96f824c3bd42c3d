using RetriBooru.Imaging;
using SkiaSharp;

namespace RetriBooru.Metrics.Vqa;

/// <summary>An image file with its ground-truth attribute values (e.g. one line of the synthetic generator's attributes file).</summary>
public sealed record LabelledImage(string ImagePath, IReadOnlyDictionary<string, string> Attributes);

/// <summary>Probe samples loaded from files: the good ones, and each skipped file with the reason.</summary>
public sealed class LoadedProbeSamples(IReadOnlyList<ProbeSample> samples, IReadOnlyList<(string Path, string Reason)> skipped) : IDisposable
{
    public IReadOnlyList<ProbeSample> Samples { get; } = samples;
    public IReadOnlyList<(string Path, string Reason)> Skipped { get; } = skipped;
    public void Dispose() { foreach (var s in Samples) s.Image.Dispose(); }
}

/// <summary>Turns labelled image files into probe training data.</summary>
public static class ProbeSamples
{
    /// <summary>
    /// The schema implied by the labels: one attribute per name found in every entry, its vocabulary the sorted set of
    /// values seen (attributes with fewer than two values carry no information and are left out).
    /// </summary>
    public static AttributeSchema InferSchema(IEnumerable<IReadOnlyDictionary<string, string>> labels, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? tags = null)
    {
        var list = labels.ToList();
        if (list.Count == 0) throw new ArgumentException("cannot infer an attribute schema from no labels");
        var names = list.Skip(1).Aggregate((IEnumerable<string>)list[0].Keys, (acc, l) => acc.Intersect(l.Keys)).OrderBy(n => n, StringComparer.Ordinal);
        var specs = names
            .Select(n => new AttributeSpec(n, list.Select(l => l[n]).Distinct(StringComparer.OrdinalIgnoreCase).OrderBy(v => v, StringComparer.Ordinal).ToList(), tags?.GetValueOrDefault(n)))
            .Where(s => s.Values.Count >= 2)
            .ToList();
        return new AttributeSchema(specs);
    }

    /// <summary>
    /// Decodes each image (resized to <paramref name="size"/> square to keep memory small); an unreadable file, or one
    /// whose labels lack a schema attribute or use a value outside its vocabulary, is skipped and reported with the reason.
    /// </summary>
    public static LoadedProbeSamples Load(IEnumerable<LabelledImage> entries, AttributeSchema schema, int size = 64)
    {
        var samples = new List<ProbeSample>();
        var skipped = new List<(string, string)>();
        foreach (var entry in entries)
        {
            var problem = schema.Attributes
                .Select(a => !entry.Attributes.TryGetValue(a.Name, out var v) ? $"attribute '{a.Name}' is missing"
                    : a.IndexOf(v) < 0 ? $"attribute '{a.Name}' has value '{v}', not in its vocabulary" : null)
                .FirstOrDefault(p => p is not null);
            if (problem is not null) { skipped.Add((entry.ImagePath, problem)); continue; }
            var (decoded, decodeProblem) = ImageProbe.TryDecode(entry.ImagePath);
            if (decoded is null)
            {
                skipped.Add((entry.ImagePath, decodeProblem!.Message));
                continue;
            }
            using (decoded) samples.Add(new ProbeSample(ImageOps.Resize(decoded, size, size), entry.Attributes, entry.ImagePath));
        }
        return new LoadedProbeSamples(samples, skipped);
    }
}
