using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>One attribute the prompt asked for and what the probe saw.</summary>
public sealed record PromptCheck(string Attribute, IReadOnlyList<string> Asked, string Predicted, bool Agrees);

/// <summary>Prompt consistency of one image: the fraction of prompt-specified attributes the image shows (null when the prompt specifies none).</summary>
public sealed record PromptConsistencyResult(double? Score, IReadOnlyList<PromptCheck> Checks);

/// <summary>
/// Prompt consistency, two ways:
///  - probe agreement (offline): an attribute is "asked" when a prompt tag equals the tag of one of its values
///    (tags compared lower-case with '_' as ' '); score = (# asked attributes whose predicted value is among the asked
///    values) / (# asked attributes). Attributes the prompt does not mention, and those the probe cannot read
///    (<see cref="AttributeProbe.Unreadable"/>), are not checked.
///  - CLIP-T (when CLIP weights are given): cos(CLIP image embedding, CLIP text embedding of the prompt), the raw
///    cosine (multiply by 100 for the "CLIP score" convention).
/// </summary>
public static class PromptConsistency
{
    /// <param name="leaveOut">Attributes not checked even when asked (ones the reader cannot read).</param>
    public static PromptConsistencyResult FromAttributes(AttributeSchema schema, IReadOnlyDictionary<string, string> predicted, IEnumerable<string> promptTags, IReadOnlySet<string>? leaveOut = null)
    {
        var tags = promptTags.Select(VqaText.Normalize).ToHashSet();
        var checks = new List<PromptCheck>();
        foreach (var attribute in schema.Attributes)
        {
            if (leaveOut?.Contains(attribute.Name) == true) continue;
            var asked = attribute.Values.Where(v => tags.Contains(VqaText.Normalize(attribute.TagOf(v)))).ToList();
            if (asked.Count == 0) continue;
            if (!predicted.TryGetValue(attribute.Name, out var value)) throw new ArgumentException($"no prediction for attribute '{attribute.Name}'");
            checks.Add(new PromptCheck(attribute.Name, asked, value, asked.Any(a => string.Equals(a, value, StringComparison.OrdinalIgnoreCase))));
        }
        return new PromptConsistencyResult(checks.Count == 0 ? null : checks.Count(c => c.Agrees) / (double)checks.Count, checks);
    }

    public static PromptConsistencyResult FromProbe(AttributeProbe probe, SKBitmap image, IEnumerable<string> promptTags) =>
        FromAttributes(probe.Schema, probe.Predict(image), promptTags, probe.Unreadable);

    /// <summary>CLIP-T: cosine between the CLIP image and text embeddings (the two must come from the same CLIP model).</summary>
    public static double ClipT(IImageEmbedder clipImage, ITextEmbedder clipText, SKBitmap image, string prompt)
    {
        if (clipImage.Dimension != clipText.Dimension)
            throw new ArgumentException($"CLIP-T needs image and text embeddings in one space: {clipImage.Name} gives {clipImage.Dimension}-d, {clipText.Name} {clipText.Dimension}-d");
        return VectorMath.Dot(clipImage.Embed(image), clipText.Embed(prompt));
    }
}
