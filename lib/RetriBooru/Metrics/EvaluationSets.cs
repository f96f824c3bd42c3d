using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics;

/// <summary>
/// One reference set to evaluate: the target example it comes from (its prompt, character and clothing identity) and
/// the references the model is conditioned on. <see cref="FaceClothingIds"/> lists the clothing identities of the
/// images the face references were cut from (the composition split makes them differ from <see cref="ClothingId"/>).
/// </summary>
public sealed record EvaluationSet(string Id, string Character, string ClothingId, string Prompt, IReadOnlyList<ReferenceImage> References,
    IReadOnlyList<string> FaceClothingIds);

/// <summary>
/// Chooses the reference sets of an evaluation split from a manifest.
/// <list type="bullet">
/// <item><c>seen</c>: examples of the <c>heldout</c> split (held-out images of trained characters, references as the manifest has them);</item>
/// <item><c>unseen</c>: examples of the <c>unseen</c> split (characters never trained on);</item>
/// <item><c>composition</c>: <c>heldout</c> examples whose face references are replaced by face crops (already in the
/// manifest, so the files exist) of images of the same character in a <em>different</em> clothing identity, drawn from
/// the target's pool (train + heldout images, never the target). The clothes references and the prompt stay those of the
/// target's outfit, so a model must take the clothes from the clothes references and the face from the face references.
/// Examples whose character has no face crop in another outfit are not eligible.</item>
/// </list>
/// The choice is deterministic from the seed: characters and each character's examples are shuffled, then taken round
/// robin (one example per character in turn), so a small N still covers many characters.
/// </summary>
public static class EvaluationSets
{
    public static IReadOnlyList<EvaluationSet> Choose(IReadOnlyList<TrainingExample> manifest, IReadOnlyList<ImageRecord> records, EvaluationSplit split, int count, long seed)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "need at least one reference set");
        var byId = records.ToDictionary(r => r.Id, StringComparer.Ordinal);
        var candidates = split switch
        {
            EvaluationSplit.Seen => manifest.Where(e => e.Split == SplitNames.Heldout).Select(e => AsIs(e, byId)).ToList(),
            EvaluationSplit.Unseen => manifest.Where(e => e.Split == SplitNames.Unseen).Select(e => AsIs(e, byId)).ToList(),
            _ => Compositions(manifest, byId, seed),
        };
        var chosen = RoundRobin(candidates, count, Seeding.Stream(seed, "evaluation-sets/" + split));
        return chosen;
    }

    /// <summary>The manifest split an evaluation split draws its targets from.</summary>
    public static string ManifestSplit(EvaluationSplit split) => split == EvaluationSplit.Unseen ? SplitNames.Unseen : SplitNames.Heldout;

    static EvaluationSet AsIs(TrainingExample e, IReadOnlyDictionary<string, ImageRecord> records) =>
        new(e.Target, e.Character, e.ClothingId, e.Prompt, e.References,
            e.References.Where(r => r.Concept == Concept.Face).Select(r => records.TryGetValue(r.SourceId, out var s) ? s.ClothingId ?? "" : "").ToList());

    static List<EvaluationSet> Compositions(IReadOnlyList<TrainingExample> manifest, IReadOnlyDictionary<string, ImageRecord> records, long seed)
    {
        // Every face crop the manifest already references, with its source record.
        var faceCrops = manifest.SelectMany(e => e.References).Where(r => r.Concept == Concept.Face && !r.Id.EndsWith("_mirror", StringComparison.Ordinal))
            .GroupBy(r => r.Id, StringComparer.Ordinal).Select(g => g.First())
            .Where(r => records.ContainsKey(r.SourceId))
            .Select(r => (Reference: r, Source: records[r.SourceId]))
            .OrderBy(x => x.Reference.Id, StringComparer.Ordinal).ToList();
        var sets = new List<EvaluationSet>();
        foreach (var target in manifest.Where(e => e.Split == SplitNames.Heldout))
        {
            var pool = faceCrops.Where(x => x.Source.Character == target.Character && x.Source.Id != target.Target
                && x.Source.ClothingId is not null && x.Source.ClothingId != target.ClothingId
                && x.Source.Split is SplitNames.Train or SplitNames.Heldout).ToList();
            var clothes = target.References.Where(r => r.Concept == Concept.Clothes).ToList();
            if (pool.Count == 0 || clothes.Count == 0) continue;
            int faces = Math.Max(1, target.References.Count(r => r.Concept == Concept.Face));
            var random = Seeding.Stream(seed, "composition/" + target.Target);
            var shuffled = pool.ToArray();
            random.Shuffle(shuffled);
            var chosen = Enumerable.Range(0, faces).Select(k => shuffled[k % shuffled.Length]).ToList();
            sets.Add(new EvaluationSet(target.Target, target.Character, target.ClothingId, target.Prompt,
                chosen.Select(x => x.Reference).Concat(clothes).ToList(), chosen.Select(x => x.Source.ClothingId!).ToList()));
        }
        return sets;
    }

    static List<EvaluationSet> RoundRobin(List<EvaluationSet> candidates, int count, Random random)
    {
        var characters = candidates.Select(c => c.Character).Distinct().OrderBy(c => c, StringComparer.Ordinal).ToArray();
        random.Shuffle(characters);
        var queues = characters.Select(c =>
        {
            var items = candidates.Where(e => e.Character == c).OrderBy(e => e.Id, StringComparer.Ordinal).ToArray();
            random.Shuffle(items);
            return new Queue<EvaluationSet>(items);
        }).ToList();
        var chosen = new List<EvaluationSet>();
        while (chosen.Count < count && queues.Any(q => q.Count > 0))
            foreach (var queue in queues)
                if (chosen.Count < count && queue.Count > 0) chosen.Add(queue.Dequeue());
        return chosen;
    }
}
