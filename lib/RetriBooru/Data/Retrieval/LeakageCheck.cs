using RetriBooru.Settings;
using System.Text.Json.Serialization;
using RetriBooru.Imaging;

namespace RetriBooru.Data.Retrieval;

/// <summary>What the leakage check found in one manifest.</summary>
public sealed record LeakageReport
{
    [JsonPropertyName("scheme")] public required string Scheme { get; init; }
    [JsonPropertyName("examples")] public int Examples { get; init; }
    [JsonPropertyName("references")] public int References { get; init; }
    /// <summary>References cut from the target image itself.</summary>
    [JsonPropertyName("self_references")] public int SelfReferences { get; init; }
    /// <summary>References cut from an image within the near-duplicate threshold of the target.</summary>
    [JsonPropertyName("near_duplicate_references")] public int NearDuplicateReferences { get; init; }
    /// <summary>Face references of another character, or clothes references of another clothing identity.</summary>
    [JsonPropertyName("identity_mismatches")] public int IdentityMismatches { get; init; }
    /// <summary>References of train targets taken from held-out or unseen images, and other pool violations.</summary>
    [JsonPropertyName("split_leaks")] public int SplitLeaks { get; init; }
    /// <summary>References to unknown images, or crop files not derived from their source id.</summary>
    [JsonPropertyName("broken_references")] public int BrokenReferences { get; init; }
    [JsonPropertyName("near_duplicate_threshold")] public int NearDuplicateThreshold { get; init; }
    /// <summary>The first few violations, for people.</summary>
    [JsonPropertyName("violations")] public IReadOnlyList<string> Violations { get; init; } = [];

    [JsonPropertyName("leakage_free")] public bool IsLeakageFree => SelfReferences + NearDuplicateReferences + IdentityMismatches + SplitLeaks + BrokenReferences == 0;
}

/// <summary>
/// Proves (or refutes) that a manifest is leakage-free: no reference comes from the target or a near-duplicate of it
/// (pHash within the threshold), every reference has the target's identity for its concept, and train targets only
/// see train images. Run on every manifest the builder writes; a scheme-b manifest that fails is never written.
/// </summary>
public static class LeakageCheck
{
    public static LeakageReport Check(IReadOnlyList<TrainingExample> examples, IReadOnlyList<ImageRecord> records, int nearDuplicateThreshold)
    {
        var byId = records.ToDictionary(r => r.Id, StringComparer.Ordinal);
        int refs = 0, self = 0, near = 0, mismatch = 0, splitLeaks = 0, broken = 0;
        var violations = new List<string>();
        void Violation(string message) { if (violations.Count < 20) violations.Add(message); }
        string scheme = examples.Count > 0 ? examples[0].Scheme : "b";
        foreach (var example in examples)
        {
            if (!byId.TryGetValue(example.Target, out var target)) { broken++; Violation($"{example.Target}: target is not in records"); continue; }
            foreach (var reference in example.References)
            {
                refs++;
                if (!byId.TryGetValue(reference.SourceId, out var source)) { broken++; Violation($"{example.Target}: reference {reference.Id} comes from unknown image {reference.SourceId}"); continue; }
                if (!reference.Image.StartsWith($"{DatasetLayout.CropsFolder}/{reference.SourceId}_", StringComparison.Ordinal))
                {
                    broken++;
                    Violation($"{example.Target}: reference file {reference.Image} is not a crop of {reference.SourceId}");
                }
                if (source.Id == target.Id) { self++; Violation($"{example.Target}: reference {reference.Id} is cut from the target itself"); continue; }
                if (ReferenceRetrieval.IsNearDuplicate(Hash(target), Hash(source), nearDuplicateThreshold))
                {
                    near++;
                    Violation($"{example.Target}: reference {reference.Id} is a near-duplicate (pHash distance {PerceptualHash.Distance(Hash(target)!.Value, Hash(source)!.Value)} <= {nearDuplicateThreshold})");
                }
                bool sameIdentity = source.Character == target.Character && (reference.Concept != Concept.Clothes || source.ClothingId == target.ClothingId);
                if (!sameIdentity) { mismatch++; Violation($"{example.Target}: {reference.Concept.Name()} reference {reference.Id} has another identity"); }
                bool poolOk = target.Split switch
                {
                    SplitNames.Train or null => source.Split is SplitNames.Train or null,
                    SplitNames.Heldout => source.Split is SplitNames.Train or SplitNames.Heldout,
                    _ => source.Split == SplitNames.Unseen,
                };
                if (!poolOk) { splitLeaks++; Violation($"{example.Target} ({target.Split}): reference {reference.Id} comes from a {source.Split} image"); }
            }
        }
        return new LeakageReport
        {
            Scheme = scheme, Examples = examples.Count, References = refs, SelfReferences = self, NearDuplicateReferences = near,
            IdentityMismatches = mismatch, SplitLeaks = splitLeaks, BrokenReferences = broken,
            NearDuplicateThreshold = nearDuplicateThreshold, Violations = violations,
        };
    }

    /// <summary>Checks a manifest file of a dataset folder.</summary>
    public static LeakageReport CheckManifest(string datasetDir, string manifestPath, int nearDuplicateThreshold = PerceptualHash.DefaultThreshold) =>
        Check(ManifestReader.Read(manifestPath), DatasetLayout.ReadRecords(datasetDir), nearDuplicateThreshold);

    static ulong? Hash(ImageRecord r) => r.Phash is null ? null : PerceptualHash.FromHex(r.Phash);
}
