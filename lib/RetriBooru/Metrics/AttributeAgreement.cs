using RetriBooru.Settings;

namespace RetriBooru.Metrics;

/// <summary>
/// Identity as attribute agreement, for datasets with ground truth (RetriBooru-Synth): the attribute probe reads a
/// generation's hair, eyes, head accessory and outfit, and the score is the fraction of them that equal the ground truth
/// of the images the references were cut from.
///
///   expected_c[a] = majority over the references of concept c of truth(source image)[a]      (ties: first reference)
///   agreement_c(G) = (1/|A_c|) * sum_{a in A_c} [probe(G)[a] = expected_c[a]]
///   A_face = {hair_color, hair_style, eye_color, accessory},  A_clothes = {top, top_color, bottom, bottom_color}
///   attribute_agreement = mean of the concepts present
///
/// Unlike embedding similarity at 32 px it names what it checks ("blonde hair? pink serafuku?"), and it is exactly
/// the question of the RetriNet issue: does the sample show the reference character's hair and outfit colours.
/// Its ceiling is the probe's accuracy on real images (reported as the same-character mean); a model that ignores
/// the references scores about the cross-character level (see <see cref="EvaluationBaselines"/>).
/// </summary>
public static class AttributeAgreement
{
    public static readonly IReadOnlyList<string> FaceAttributes = ["hair_color", "hair_style", "eye_color", "accessory"];
    public static readonly IReadOnlyList<string> ClothesAttributes = ["top", "top_color", "bottom", "bottom_color"];
    public static readonly IReadOnlyList<string> IdentityAttributes = [.. FaceAttributes, .. ClothesAttributes];

    /// <summary>The majority value of each named attribute over <paramref name="truths"/> (attributes missing from all are left out).</summary>
    public static IReadOnlyDictionary<string, string> Expected(IReadOnlyList<IReadOnlyDictionary<string, string>> truths, IReadOnlyList<string> attributes)
    {
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in attributes)
        {
            var values = truths.Where(t => t.ContainsKey(name)).Select(t => t[name]).ToList();
            if (values.Count == 0) continue;
            // GroupBy keeps first-occurrence order, and OrderByDescending is stable: ties go to the first reference.
            expected[name] = values.GroupBy(v => v, StringComparer.Ordinal).OrderByDescending(g => g.Count()).First().Key;
        }
        return expected;
    }

    /// <summary>Fraction of <paramref name="expected"/>'s attributes that <paramref name="predicted"/> gets right; null when nothing is expected.</summary>
    public static double? Score(IReadOnlyDictionary<string, string> predicted, IReadOnlyDictionary<string, string> expected)
    {
        if (expected.Count == 0) return null;
        int right = expected.Count(kv => predicted.TryGetValue(kv.Key, out var p) && string.Equals(p, kv.Value, StringComparison.Ordinal));
        return (double)right / expected.Count;
    }
}

/// <summary>What a reference set says the generation should show: the expected face and clothes attributes.</summary>
public sealed record ExpectedAttributes(IReadOnlyDictionary<string, string> Face, IReadOnlyDictionary<string, string> Clothes)
{
    public bool IsEmpty => Face.Count == 0 && Clothes.Count == 0;

    /// <summary>Per-concept agreement of a probe's prediction (null where nothing is expected) and their mean (null when both are).</summary>
    public (double? Face, double? Clothes, double? Combined) Agreement(IReadOnlyDictionary<string, string> predicted)
    {
        var face = AttributeAgreement.Score(predicted, Face);
        var clothes = AttributeAgreement.Score(predicted, Clothes);
        var present = new[] { face, clothes }.OfType<double>().ToList();
        return (face, clothes, present.Count == 0 ? null : present.Average());
    }
}

/// <summary>Ground-truth attributes of a dataset's images (from <c>attributes.jsonl</c>), looked up by the references' source images.</summary>
public sealed class AttributeGroundTruth(IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> byImageId)
{
    public static AttributeGroundTruth FromSynth(IEnumerable<Data.Synth.SynthAttributes> attributes) =>
        new(attributes.ToDictionary(a => a.Id, a => (IReadOnlyDictionary<string, string>)AttributeAgreement.IdentityAttributes
            .ToDictionary(n => n, n => Data.Synth.SynthAttributesFile.Value(a, n)), StringComparer.Ordinal));

    public int Count => byImageId.Count;

    /// <summary>Expected attributes of references given as (concept, source image id); references without ground truth are ignored.</summary>
    public ExpectedAttributes Expected(IEnumerable<(Concept Concept, string SourceId)> references)
    {
        var list = references.ToList();
        IReadOnlyList<IReadOnlyDictionary<string, string>> Truths(Concept concept) =>
            list.Where(r => r.Concept == concept && byImageId.ContainsKey(r.SourceId)).Select(r => byImageId[r.SourceId]).ToList();
        return new ExpectedAttributes(
            AttributeAgreement.Expected(Truths(Concept.Face), AttributeAgreement.FaceAttributes),
            AttributeAgreement.Expected(Truths(Concept.Clothes), AttributeAgreement.ClothesAttributes));
    }
}
