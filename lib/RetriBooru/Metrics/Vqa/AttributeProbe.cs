using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using SkiaSharp;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using TorchSharp.Modules;

namespace RetriBooru.Metrics.Vqa;

/// <summary>One training example: an image and the ground-truth value of every schema attribute.</summary>
public sealed record ProbeSample(SKBitmap Image, IReadOnlyDictionary<string, string> Attributes, string? Source = null);

public sealed record AttributeProbeOptions
{
    public int ImageSize { get; init; } = 64;
    public int Epochs { get; init; } = 12;
    public int BatchSize { get; init; } = 32;
    public double LearningRate { get; init; } = 2e-3;
    /// <summary>Fraction of samples held out (never trained on) to measure accuracy.</summary>
    public double HoldoutFraction { get; init; } = 0.2;
    public long Seed { get; init; } = 0;
    public int[] Channels { get; init; } = [16, 32, 64];
    /// <summary>Training pictures are shifted by up to this many pixels (edges replicated); 0 = none.</summary>
    public int ShiftPixels { get; init; }
    /// <summary>Training pictures are mirrored left-right half of the time (no attribute is sided).</summary>
    public bool Mirror { get; init; }
}

/// <summary>Held-out accuracy of a trained probe, per attribute and averaged.</summary>
public sealed record ProbeReport(IReadOnlyDictionary<string, double> HeldOutAccuracy, int TrainCount, int HeldOutCount, double FinalTrainLoss, AttributeProbeOptions Options)
{
    public double MeanHeldOutAccuracy => HeldOutAccuracy.Values.Average();
}

/// <summary>Progress of one training epoch.</summary>
public sealed record ProbeEpoch(int Epoch, int Epochs, double MeanLoss);

/// <summary>
/// The attribute probe: a small CNN (conv-ReLU-maxpool stages, a 4x4 adaptive average pool so position survives,
/// then one linear head per attribute) trained with a summed cross-entropy on (image, attribute values) pairs.
/// As a VQA provider it answers the question whose id equals an attribute name with that head's most likely word.
/// It is the offline default VQA: on RetriBooru-Synth the generator records every attribute, so the probe can be
/// trained and its held-out accuracy reported next to the scores it feeds.
/// </summary>
public sealed class AttributeProbe : IVqaProvider, IDisposable
{
    readonly ProbeNetwork _network;

    public AttributeSchema Schema { get; }
    public AttributeProbeOptions Options { get; }
    public string Name => "attribute-probe";

    /// <summary>
    /// Attributes this probe cannot read (<see cref="UnreadableAttributes"/> of its report): prompt consistency leaves
    /// them out, since on them a sample would agree with its prompt by chance as often as a real picture does.
    /// Set by whoever holds the report (<see cref="EvaluationProbe.Prepare"/>); empty until then.
    /// </summary>
    public IReadOnlySet<string> Unreadable { get; set; } = new HashSet<string>();

    /// <summary>Times chance an attribute's held-out accuracy must reach to count as read (chance = 1 / its values).</summary>
    public const double ReadableOverChance = 1.5;

    /// <summary>The attributes whose held-out accuracy is below <see cref="ReadableOverChance"/> times chance, in schema order.</summary>
    public static IReadOnlyList<string> UnreadableAttributes(AttributeSchema schema, ProbeReport report) =>
        schema.Attributes.Where(a => report.HeldOutAccuracy.TryGetValue(a.Name, out var accuracy) && accuracy < ReadableOverChance / a.Values.Count)
            .Select(a => a.Name).ToList();

    AttributeProbe(AttributeSchema schema, AttributeProbeOptions options, ProbeNetwork network)
    {
        Schema = schema;
        Options = options;
        _network = network;
    }

    /// <summary>Trains on a seeded share of <paramref name="samples"/> and reports accuracy on the rest (<see cref="AttributeProbeOptions.HoldoutFraction"/>).</summary>
    public static (AttributeProbe Probe, ProbeReport Report) Train(AttributeSchema schema, IReadOnlyList<ProbeSample> samples, AttributeProbeOptions? options = null, IProgress<ProbeEpoch>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new AttributeProbeOptions();
        if (samples.Count < 4) throw new ArgumentException($"the attribute probe needs at least 4 samples, got {samples.Count}");
        var order = Enumerable.Range(0, samples.Count).ToArray();
        Seeding.Stream(options.Seed, "probe-split").Shuffle(order);
        int heldOut = Math.Clamp((int)Math.Round(samples.Count * options.HoldoutFraction), 1, samples.Count - 1);
        return Train(schema, order[heldOut..].Select(i => samples[i]).ToList(), order[..heldOut].Select(i => samples[i]).ToList(), options, progress, cancellationToken);
    }

    /// <summary>Trains on <paramref name="training"/> and reports accuracy on <paramref name="heldOut"/> (pictures it never sees while training).</summary>
    public static (AttributeProbe Probe, ProbeReport Report) Train(AttributeSchema schema, IReadOnlyList<ProbeSample> training, IReadOnlyList<ProbeSample> heldOut, AttributeProbeOptions? options = null, IProgress<ProbeEpoch>? progress = null, CancellationToken cancellationToken = default)
    {
        TorchRuntime.EnsureLoaded();
        options ??= new AttributeProbeOptions();
        schema.Validate();
        if (training.Count < 3) throw new ArgumentException($"the attribute probe needs at least 3 training samples, got {training.Count}");
        if (heldOut.Count < 1) throw new ArgumentException("the attribute probe needs at least 1 held-out sample to report its accuracy");
        if (options.ShiftPixels < 0 || options.ShiftPixels > options.ImageSize / 4)
            throw new ArgumentException($"the attribute probe's shift must be 0..{options.ImageSize / 4} px (a quarter of its image size), got {options.ShiftPixels}");
        var labels = LabelsOf(schema, training);
        LabelsOf(schema, heldOut); // before training: a bad held-out label is reported before any work
        var trainIdx = Enumerable.Range(0, training.Count).ToArray();

        var network = new ProbeNetwork(schema, options);
        network.Initialize(Seeding.TorchGenerator(options.Seed, "probe-init"));
        using var images = StackImages(training, options.ImageSize);
        using var targets = tensor(labels, [training.Count, schema.Attributes.Count]);
        // The project's Adam (AdamW without decay: the same update as torch.optim.Adam) rather than TorchSharp's, whose
        // step makes implicit Scalars that the collector could free mid-call (a native toFloat crash seen in a test).
        using var parameters = new ParameterBuffer(network.named_parameters().Select(p => KeyValuePair.Create(p.name, p.parameter)).ToList());
        using var optimizer = new Diffusion.AdamW(parameters) { WeightDecay = 0 };
        var shuffle = Seeding.Stream(options.Seed, "probe-order");
        var augmentation = Seeding.Stream(options.Seed, "probe-augment");
        double lastLoss = double.NaN;
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            network.train();
            shuffle.Shuffle(trainIdx);
            double lossSum = 0;
            int batches = 0;
            for (int start = 0; start < trainIdx.Length; start += options.BatchSize)
            {
                using var scope = NewDisposeScope();
                var batchIdx = tensor(trainIdx[start..Math.Min(start + options.BatchSize, trainIdx.Length)].Select(i => (long)i).ToArray());
                var logits = network.forward(Augment(images.index_select(0, batchIdx), options, augmentation));
                var y = targets.index_select(0, batchIdx);
                Tensor loss = zeros(1);
                for (int a = 0; a < logits.Length; a++) loss = loss.Plus(functional.cross_entropy(logits[a], y[.., a]));
                parameters.ZeroGradients();
                loss.backward();
                optimizer.Step(options.LearningRate);
                lossSum += loss.item<float>();
                batches++;
            }
            lastLoss = lossSum / batches;
            progress?.Report(new ProbeEpoch(epoch + 1, options.Epochs, lastLoss));
        }

        var probe = new AttributeProbe(schema, options, network);
        return (probe, new ProbeReport(probe.Accuracy(heldOut), training.Count, heldOut.Count, lastLoss, options));
    }

    /// <summary>
    /// Accuracy per attribute (in schema order) on labelled pictures it did not train on: the held-out report of
    /// <see cref="Train"/>, and of a probe loaded from a cache and measured on another dataset.
    /// </summary>
    public IReadOnlyDictionary<string, double> Accuracy(IReadOnlyList<ProbeSample> heldOut)
    {
        if (heldOut.Count < 1) throw new ArgumentException("the attribute probe's accuracy needs at least 1 labelled picture");
        var labels = LabelsOf(Schema, heldOut);
        using var images = StackImages(heldOut, Options.ImageSize);
        var predicted = PredictIndices(images, Enumerable.Range(0, heldOut.Count).ToArray());
        var accuracy = new Dictionary<string, double>();
        for (int a = 0; a < Schema.Attributes.Count; a++)
            accuracy[Schema.Attributes[a].Name] = predicted.Select((p, k) => p[a] == labels[k * Schema.Attributes.Count + a] ? 1.0 : 0.0).Average();
        return accuracy;
    }

    /// <summary>The batch shifted and mirrored per picture as the options ask; the batch itself when they ask nothing.</summary>
    static Tensor Augment(Tensor batch, AttributeProbeOptions options, Random random)
    {
        if (options.ShiftPixels <= 0 && !options.Mirror) return batch;
        int shift = options.ShiftPixels, height = (int)batch.shape[2], width = (int)batch.shape[3];
        var padded = shift > 0 ? functional.pad(batch, [shift, shift, shift, shift], PaddingModes.Replicate) : batch;
        var pictures = new List<Tensor>();
        for (int i = 0; i < batch.shape[0]; i++)
        {
            int dy = shift > 0 ? random.Next(2 * shift + 1) : 0, dx = shift > 0 ? random.Next(2 * shift + 1) : 0;
            var picture = padded[i, .., dy..(dy + height), dx..(dx + width)];
            if (options.Mirror && random.Next(2) == 1) picture = picture.flip(2);
            pictures.Add(picture);
        }
        return stack(pictures);
    }

    /// <summary>Most likely value of every attribute.</summary>
    public IReadOnlyDictionary<string, string> Predict(SKBitmap image)
    {
        using var batch = StackImages([new ProbeSample(image, new Dictionary<string, string>())], Options.ImageSize);
        var indices = PredictIndices(batch, [0])[0];
        return Schema.Attributes.Select((a, i) => (a.Name, a.Values[(int)indices[i]])).ToDictionary(p => p.Name, p => p.Item2);
    }

    public bool CanAnswer(VqaQuestion question) => Schema.Attributes.Any(a => a.Name == question.Id);

    public IReadOnlyList<VqaAnswer> Ask(SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default)
    {
        var prediction = Predict(image);
        return questions.Where(CanAnswer).Select(q => new VqaAnswer(q.Id, prediction[q.Id])).ToList();
    }

    /// <summary>Writes probe.json (schema + options) and probe.weights (TorchSharp format) into the folder, atomically.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var meta = Description();
        // TorchSharp closes the stream it saves to, so serialise to memory first (MemoryStream.ToArray works after close).
        var buffer = new MemoryStream();
        _network.save(buffer);
        AtomicFile.WriteAllBytes(Path.Combine(directory, "probe.weights"), buffer.ToArray());
        AtomicFile.WriteAllText(Path.Combine(directory, "probe.json"), JsonSerializer.Serialize(meta, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>SHA-256 of the probe's weights and description as <see cref="Save"/> writes them: what cached probe answers are keyed by.</summary>
    public string Fingerprint()
    {
        var buffer = new MemoryStream();
        _network.save(buffer);
        var meta = JsonSerializer.Serialize(Description());
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(buffer.ToArray());
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes(meta));
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    /// <summary>What probe.json holds: the schema and the options.</summary>
    ProbeFile Description() => new ProbeFile(Schema.Attributes.Select(a => new ProbeFileAttribute(a.Name, a.Values.ToArray(), a.Tags?.ToDictionary())).ToArray(), Options);

    public static AttributeProbe Load(string directory)
    {
        TorchRuntime.EnsureLoaded();
        var metaPath = Path.Combine(directory, "probe.json");
        var weightsPath = Path.Combine(directory, "probe.weights");
        if (!File.Exists(metaPath)) throw new FileNotFoundException($"{metaPath}: attribute probe description not found", metaPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"{weightsPath}: attribute probe weights not found", weightsPath);
        ProbeFile meta;
        try { meta = JsonSerializer.Deserialize<ProbeFile>(RegularFile.ReadAllText(metaPath, "probe description")) ?? throw new JsonException("the file holds null"); }
        catch (JsonException e) { throw new InvalidDataException($"{metaPath}: not a valid probe description: {e.Message}", e); }
        CheckSizes(meta, metaPath);
        var schema = new AttributeSchema(meta.Attributes.Select(a => new AttributeSpec(a.Name, a.Values, a.Tags)).ToList());
        schema.Validate();
        var network = new ProbeNetwork(schema, meta.Options);
        RegularFile.Require(weightsPath, "probe weights file");
        try { network.load(weightsPath); }
        catch (Exception e) when (e is not OutOfMemoryException and not InvalidDataException)
        {
            // TorchSharp reports a truncated or foreign file as whatever its reader hit (end of stream, a bad count, a shape).
            network.Dispose();
            throw new InvalidDataException($"{weightsPath}: not this probe's weights ({e.GetType().Name}: {e.Message})", e);
        }
        return new AttributeProbe(schema, meta.Options, network);
    }

    List<long[]> PredictIndices(Tensor images, IReadOnlyList<int> which)
    {
        _network.eval();
        var result = new List<long[]>();
        using var noGrad = no_grad();
        for (int start = 0; start < which.Count; start += 64)
        {
            using var scope = NewDisposeScope();
            var idx = tensor(which.Skip(start).Take(64).Select(i => (long)i).ToArray());
            var logits = _network.forward(images.index_select(0, idx));
            var argmax = logits.Select(l => l.argmax(1).data<long>().ToArray()).ToArray();
            for (int k = 0; k < idx.shape[0]; k++) result.Add(argmax.Select(a => a[k]).ToArray());
        }
        return result;
    }

    static long[] LabelsOf(AttributeSchema schema, IReadOnlyList<ProbeSample> samples)
    {
        var labels = new long[samples.Count * schema.Attributes.Count];
        for (int s = 0; s < samples.Count; s++)
            for (int a = 0; a < schema.Attributes.Count; a++)
            {
                var spec = schema.Attributes[a];
                var name = samples[s].Source ?? $"sample {s}";
                if (!samples[s].Attributes.TryGetValue(spec.Name, out var value))
                    throw new ArgumentException($"{name}: attribute '{spec.Name}' is missing");
                int index = spec.IndexOf(value);
                if (index < 0) throw new ArgumentException($"{name}: attribute '{spec.Name}' has value '{value}', not in its vocabulary ({string.Join(", ", spec.Values)})");
                labels[s * schema.Attributes.Count + a] = index;
            }
        return labels;
    }

    static Tensor StackImages(IReadOnlyList<ProbeSample> samples, int size)
    {
        using var scope = NewDisposeScope();
        var list = new List<Tensor>();
        foreach (var s in samples)
        {
            using var resized = ImageOps.Resize(s.Image, size, size);
            list.Add(ImageTensor.FromBitmap(resized));
        }
        return stack(list).MoveToOuterDisposeScope();
    }

    public void Dispose() => _network.Dispose();

    sealed record ProbeFileAttribute(string Name, string[] Values, Dictionary<string, string>? Tags);
    sealed record ProbeFile(ProbeFileAttribute[] Attributes, AttributeProbeOptions Options);

    /// <summary>The network's sizes come from probe.json: bounded before it is built.</summary>
    static void CheckSizes(ProbeFile meta, string path)
    {
        if (meta.Attributes is null || meta.Options?.Channels is null) throw new InvalidDataException($"{path}: attributes and options.channels are required");
        SizeLimits.Require(meta.Options.ImageSize, 1, SizeLimits.MaxSampleSize, path, "options.image_size");
        SizeLimits.Require(meta.Options.Channels.Length, 1, SizeLimits.MaxLevels, path, "options.channels (count)");
        foreach (var c in meta.Options.Channels) SizeLimits.Require(c, 1, SizeLimits.MaxWidth, path, "options.channels");
        var widths = meta.Options.Channels.Prepend(3).ToArray();
        double parameters = widths.Zip(widths.Skip(1), (a, b) => 9.0 * a * b).Sum() + 16.0 * widths[^1] * meta.Attributes.Sum(a => (double)(a.Values?.Length ?? 0));
        SizeLimits.RequireParameters(parameters, path, "attribute probe");
    }

    sealed class ProbeNetwork : Module<Tensor, Tensor[]>
    {
        readonly Sequential features;
        readonly ModuleList<Linear> heads;

        public ProbeNetwork(AttributeSchema schema, AttributeProbeOptions options) : base("attribute_probe")
        {
            var layers = new List<(string, Module<Tensor, Tensor>)>();
            int inChannels = 3;
            for (int i = 0; i < options.Channels.Length; i++)
            {
                layers.Add(($"conv{i}", Conv2d(inChannels, options.Channels[i], 3, padding: 1)));
                layers.Add(($"relu{i}", ReLU()));
                layers.Add(($"pool{i}", MaxPool2d(2)));
                inChannels = options.Channels[i];
            }
            layers.Add(("pool", AdaptiveAvgPool2d(4)));
            layers.Add(("flatten", Flatten()));
            features = Sequential(layers);
            heads = new ModuleList<Linear>(schema.Attributes.Select(a => Linear(inChannels * 16, a.Values.Count)).ToArray());
            RegisterComponents();
        }

        /// <summary>PyTorch's default bound (1/sqrt(fan_in)) drawn from a seeded generator, so training is reproducible.</summary>
        public void Initialize(Generator generator)
        {
            using var noGrad = no_grad();
            foreach (var (_, module) in named_modules())
            {
                if (module is not (TorchSharp.Modules.Conv2d or TorchSharp.Modules.Linear)) continue;
                var weight = ((Module)module).get_parameter("weight")!;
                long fanIn = weight.shape.Skip(1).Aggregate(1L, (x, y) => x * y);
                double bound = 1 / Math.Sqrt(fanIn);
                // Tensor.uniform_ honours the generator (nn.init.uniform_ in TorchSharp 0.107 ignores it).
                weight.uniform_(-bound, bound, generator);
                if (((Module)module).get_parameter("bias") is Tensor bias) bias.uniform_(-bound, bound, generator);
            }
        }

        public override Tensor[] forward(Tensor input)
        {
            var f = features.forward(input);
            return heads.Select(h => h.forward(f)).ToArray();
        }
    }
}
