using RetriBooru.Runtime;

namespace RetriBooru.Data;

/// <summary>Split names. References of a <c>train</c> target come only from <c>train</c> images.</summary>
public static class SplitNames
{
    public const string Train = "train";
    public const string Heldout = "heldout";
    public const string Unseen = "unseen";
    public static readonly IReadOnlyList<string> All = [Train, Heldout, Unseen];
}

/// <summary>
/// Splits by character: a seeded shuffle of the characters puts <c>round(n * unseenFraction)</c> of them (at least one
/// when there are three or more) in <c>unseen</c>; of each seen character, about <c>heldoutFraction</c> of its images go to
/// <c>heldout</c>, taken only from clothing identities that keep at least two training images (so every held-out
/// image still has training references of its own outfit).
/// </summary>
public static class Splits
{
    public static IReadOnlyDictionary<string, string> Assign(IReadOnlyList<ImageRecord> records, long seed, double unseenFraction, double heldoutFraction)
    {
        if (unseenFraction is < 0 or >= 1) throw new ArgumentException("unseen fraction must be in [0, 1)");
        if (heldoutFraction is < 0 or >= 1) throw new ArgumentException("held-out fraction must be in [0, 1)");
        var characters = records.Select(r => r.Character).Distinct().OrderBy(c => c, StringComparer.Ordinal).ToList();
        Shuffle(characters, Seeding.Stream(seed, "split-characters"));
        int unseenCount = (int)Math.Round(characters.Count * unseenFraction);
        if (unseenFraction > 0 && unseenCount == 0 && characters.Count >= 3) unseenCount = 1;
        var unseen = characters.Take(unseenCount).ToHashSet(StringComparer.Ordinal);

        var split = new Dictionary<string, string>(StringComparer.Ordinal);
        var random = Seeding.Stream(seed, "split-heldout");
        foreach (var character in records.GroupBy(r => r.Character).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            if (unseen.Contains(character.Key))
            {
                foreach (var r in character) split[r.Id] = SplitNames.Unseen;
                continue;
            }
            var images = character.OrderBy(r => r.Id, StringComparer.Ordinal).ToList();
            Shuffle(images, random);
            int quota = (int)Math.Round(images.Count * heldoutFraction);
            var trainLeft = images.GroupBy(r => r.ClothingId ?? "").ToDictionary(g => g.Key, g => g.Count());
            foreach (var record in images)
            {
                var cluster = record.ClothingId ?? "";
                if (quota > 0 && trainLeft[cluster] >= 3)
                {
                    split[record.Id] = SplitNames.Heldout;
                    trainLeft[cluster]--;
                    quota--;
                }
                else split[record.Id] = SplitNames.Train;
            }
        }
        return split;
    }

    static void Shuffle<T>(List<T> list, Random random)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}
