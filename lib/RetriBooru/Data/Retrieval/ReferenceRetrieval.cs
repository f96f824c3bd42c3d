using RetriBooru.Settings;
using RetriBooru.Imaging;
using RetriBooru.Runtime;

namespace RetriBooru.Data.Retrieval;

/// <summary>How references are drawn.</summary>
public sealed record RetrievalOptions
{
    public int FaceReferences { get; init; } = 2;
    public int ClothesReferences { get; init; } = 2;
    /// <summary>Images whose pHash is within this many bits of the target's are near-duplicates, never references (scheme b).</summary>
    public int NearDuplicateThreshold { get; init; } = PerceptualHash.DefaultThreshold;
    public long Seed { get; init; } = 1234;
}

/// <summary>A target that got no manifest line, and why.</summary>
public sealed record SkippedTarget(string Id, string Code, string Message);

/// <summary>A crop a manifest needs: from which image, which concept, mirrored or not.</summary>
public sealed record CropRequest(string SourceId, Concept Concept, bool Mirror)
{
    public string CropId => $"{SourceId}_{Concept.Name()}{(Mirror ? "_mirror" : "")}";
    public string RelativePath => $"{DatasetLayout.CropsFolder}/{CropId}.png";
}

/// <summary>
/// Chooses references for every target.
/// <para>Scheme <c>b</c> (leakage-free): clothes references are other images of the same character and clothing
/// identity, face references other images of the same character that have a face box, preferring other outfits (so the
/// face concept does not also carry the clothes). Never the target, never an image within the near-duplicate threshold
/// of the target. Candidates come from the target's split pool: <c>train</c> targets draw only from <c>train</c>,
/// <c>heldout</c> targets from <c>train</c> + <c>heldout</c>, <c>unseen</c> targets from their own character's images.
/// When fewer distinct candidates exist than requested, chosen ones repeat (counted in the stats).</para>
/// <para>Scheme <c>a</c> (for the leakage study only): the target's own face and clothes crops, alternately mirrored.</para>
/// </summary>
public static class ReferenceRetrieval
{
    public static (List<TrainingExample> Examples, List<SkippedTarget> Skipped, int Repeated) Build(
        IReadOnlyList<ImageRecord> records, ReferenceScheme scheme, RetrievalOptions options)
    {
        var examples = new List<TrainingExample>();
        var skipped = new List<SkippedTarget>();
        int repeated = 0;
        var byCharacter = records.GroupBy(r => r.Character).ToDictionary(g => g.Key, g => g.ToList());
        var hashes = records.ToDictionary(r => r.Id, r => r.Phash is null ? (ulong?)null : PerceptualHash.FromHex(r.Phash));
        foreach (var target in records)
        {
            var references = new List<ReferenceImage>();
            if (scheme == ReferenceScheme.A)
            {
                if (target.FaceBox is null && options.FaceReferences > 0)
                {
                    skipped.Add(new(target.Id, "no_face_box", "scheme a needs the target's own face box"));
                    continue;
                }
                for (int k = 0; k < options.FaceReferences; k++) references.Add(Reference(new CropRequest(target.Id, Concept.Face, k % 2 == 1)));
                for (int k = 0; k < options.ClothesReferences; k++) references.Add(Reference(new CropRequest(target.Id, Concept.Clothes, k % 2 == 1)));
            }
            else
            {
                var random = Seeding.Stream(options.Seed, $"references/{target.Id}");
                var pool = byCharacter[target.Character].Where(c => InPool(target.Split, c.Split) && c.Id != target.Id
                    && !IsNearDuplicate(hashes[target.Id], hashes[c.Id], options.NearDuplicateThreshold)).ToList();
                var clothes = pool.Where(c => c.ClothingId == target.ClothingId).ToList();
                var faces = pool.Where(c => c.FaceBox is not null).ToList();
                if (options.ClothesReferences > 0 && clothes.Count == 0)
                {
                    skipped.Add(new(target.Id, "no_clothes_reference", $"no other {target.Split}-pool image of {target.Character} in {target.ClothingId} outside the near-duplicate threshold"));
                    continue;
                }
                if (options.FaceReferences > 0 && faces.Count == 0)
                {
                    skipped.Add(new(target.Id, "no_face_reference", $"no other {target.Split}-pool image of {target.Character} with a face box outside the near-duplicate threshold"));
                    continue;
                }
                var clothesChosen = Choose(clothes, options.ClothesReferences, random, ref repeated);
                // Prefer faces from other outfits, then from images not already used for clothes.
                var facesOrdered = Shuffled(faces, random)
                    .OrderBy(c => c.ClothingId == target.ClothingId ? 1 : 0)
                    .ThenBy(c => clothesChosen.Any(x => x.Id == c.Id) ? 1 : 0).ToList();
                var facesChosen = ChooseOrdered(facesOrdered, options.FaceReferences, ref repeated);
                references.AddRange(facesChosen.Select(c => Reference(new CropRequest(c.Id, Concept.Face, false))));
                references.AddRange(clothesChosen.Select(c => Reference(new CropRequest(c.Id, Concept.Clothes, false))));
            }
            examples.Add(new TrainingExample
            {
                Target = target.Id, Image = target.Image, Mask = target.Mask, Prompt = target.Prompts,
                Split = target.Split ?? SplitNames.Train, Scheme = scheme.Name(), Character = target.Character,
                ClothingId = target.ClothingId ?? "", References = references,
            });
        }
        return (examples, skipped, repeated);
    }

    public static ReferenceImage Reference(CropRequest crop) => new()
    {
        Id = crop.CropId, Image = crop.RelativePath, Concept = crop.Concept, SourceId = crop.SourceId,
    };

    /// <summary>Parses a reference's crop file back into the request that makes it.</summary>
    public static CropRequest RequestOf(ReferenceImage reference) =>
        new(reference.SourceId, reference.Concept, reference.Id.EndsWith("_mirror", StringComparison.Ordinal));

    static bool InPool(string? targetSplit, string? candidateSplit) => targetSplit switch
    {
        SplitNames.Heldout => candidateSplit is SplitNames.Train or SplitNames.Heldout,
        SplitNames.Unseen => candidateSplit == SplitNames.Unseen,
        _ => candidateSplit is SplitNames.Train or null,
    };

    internal static bool IsNearDuplicate(ulong? a, ulong? b, int threshold) =>
        a is ulong x && b is ulong y && PerceptualHash.Distance(x, y) <= threshold;

    static List<ImageRecord> Choose(List<ImageRecord> candidates, int count, Random random, ref int repeated) =>
        ChooseOrdered(Shuffled(candidates, random), count, ref repeated);

    static List<ImageRecord> ChooseOrdered(List<ImageRecord> ordered, int count, ref int repeated)
    {
        var chosen = new List<ImageRecord>();
        for (int k = 0; k < count; k++)
        {
            if (k >= ordered.Count) repeated++;
            chosen.Add(ordered[k % ordered.Count]);
        }
        return chosen;
    }

    static List<ImageRecord> Shuffled(List<ImageRecord> list, Random random)
    {
        var copy = list.OrderBy(r => r.Id, StringComparer.Ordinal).ToList();
        for (int i = copy.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (copy[i], copy[j]) = (copy[j], copy[i]);
        }
        return copy;
    }
}
